"""`OpenConfig`: a config block whose keys its `type` decides (plugin blocks, weighting methods).

A `hyperparams.Config` is strict: every key is a dataclass field, so a
block whose keys depend on the registered builder it names (an encoder, a
head, an architecture, a weighting method) would need a field for every
argument of every builder, and a plugin could not add its own. An
`OpenConfig` takes any key instead, also under strict overrides
(`--config_file`, `--params_override`), and the config that owns it checks
the keys against the builder's signature in `validate()`, through the
builder's `multitask.registry.Registry.check`, before anything runs.

Setting another `type` than the current one replaces the whole block, so the
new type does not inherit the previous type's keys (keys set while the block
had no type, or an empty one, stay: they were meant for the type to come). This module has no
TensorFlow dependency: `multitask.configs` imports it.
"""
from official.modeling import hyperparams


class OpenConfig(hyperparams.Config):
    """A config that takes any key, for blocks whose keys their `type` decides.

    An override may add keys (also under strict overrides); one that sets a
    different `type` than the current one replaces the whole config, so a
    plugin block does not inherit the previous block's keys. Nested mappings
    become `OpenConfig`s too. `validate` of the owning config checks the keys.
    """

    # Read by the launcher's unknown-key check (multitask.overrides.find_unknown_key).
    accepts_new_keys = True

    def _set(self, k, v):
        if isinstance(v, dict):
            self.__dict__[k] = OpenConfig(default_params=v)
        else:
            super()._set(k, v)

    def _override(self, override_dict, is_strict=True):
        del is_strict  # Any key is allowed; the block's builder decides.
        new_type = override_dict.get("type")
        if new_type is not None and self.__dict__.get("type") not in (None, "", new_type):
            for key in [k for k in self.__dict__ if k not in self.RESERVED_ATTR]:
                del self.__dict__[key]
        for key, value in override_dict.items():
            if key in self.RESERVED_ATTR:
                raise KeyError(f"The key {key!r} is internally reserved and cannot be overridden.")
            current = self.__dict__.get(key)
            if isinstance(value, (dict, hyperparams.ParamsDict)) and isinstance(current, OpenConfig):
                current._override(value if isinstance(value, dict) else value.as_dict())  # pylint: disable=protected-access
            else:
                self._set(key, value.as_dict() if isinstance(value, hyperparams.ParamsDict) else value)


def block(type_: str, **params) -> OpenConfig:
    """A block config `{type: type_, **params}`, e.g. `block("mlp", hidden_sizes=(32,))`."""
    return OpenConfig(default_params={"type": type_, **params})
