"""Error messages in one line, as the launcher prints them."""
import re


def one_line(error: BaseException) -> str:
    """The informative first line of an exception's message, without TF's decorations."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception encountered when calling")] or [type(error).__name__]
    line = lines[0]
    if line.endswith(":") and len(lines) > 1:  # e.g. Keras' "... Error encountered:", then the cause.
        line = f"{line} {lines[1]}"
    line = re.sub(r"\s*\[Op:[^\]]*\].*$", "", line)
    return re.sub(r"\s+", " ", line).rstrip(".")
