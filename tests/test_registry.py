"""Tests for multitask.registry: the one mechanism behind encoders, heads, architectures and weightings."""
import keras
import pytest

from multitask import registry
from multitask import weighting
from multitask.modeling import architectures
from multitask.modeling import encoders
from multitask.modeling import heads
from multitask.modeling import registry as modeling_registry


def _registry():
    blocks = registry.Registry("block")

    @blocks.register("scaled")
    def scaled(factor=2, name=None):
        return ("scaled", factor, name)

    @blocks.register("layer")
    class Layer(keras.layers.Layer):  # pylint: disable=unused-variable
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units

    @blocks.register("anything")
    def anything(**kwargs):  # pylint: disable=unused-variable
        return kwargs

    return blocks, scaled


def test_register_lookup_and_build():
    blocks, scaled = _registry()
    assert blocks.names == ["anything", "layer", "scaled"]
    assert "scaled" in blocks and "other" not in blocks
    assert blocks.lookup("scaled") is scaled
    assert blocks.build({"type": "scaled", "factor": 3}, name="x") == ("scaled", 3, "x")
    with pytest.raises(ValueError, match=r"Unknown block 'other'; registered: anything, layer, scaled\."):
        blocks.lookup("other")
    with pytest.raises(ValueError, match="A block config needs a `type`"):
        blocks.build({"factor": 3})


def test_a_duplicate_name_is_a_key_error_and_a_value_error():
    blocks, _ = _registry()
    for error in (KeyError, ValueError):
        with pytest.raises(error, match=r"^block 'scaled' is already registered \(by .*scaled\)\.$"):
            blocks.register("scaled")(lambda: None)


def test_arguments_of_functions_layers_and_open_builders():
    blocks, _ = _registry()
    assert blocks.arguments("scaled") == ["factor", "name"]
    layer_arguments = blocks.arguments("layer")
    assert layer_arguments[0] == "units" and {"name", "dtype", "trainable"} <= set(layer_arguments)
    assert blocks.arguments("anything") is None


def test_check_names_the_field_and_the_allowed_keys():
    blocks, _ = _registry()
    blocks.check({"type": "scaled", "factor": 1}, "model.block")
    blocks.check({"type": "anything", "whatever": 1}, "model.block")
    with pytest.raises(ValueError, match=r"model.block needs a `type`; registered blocks: anything, layer, scaled"):
        blocks.check({}, "model.block")
    with pytest.raises(ValueError, match=r"model.block.type is 'other', an unknown block; registered: anything"):
        blocks.check({"type": "other"}, "model.block")
    with pytest.raises(ValueError, match=r"model.block: block 'scaled' does not take fator; it takes: factor\.$"):
        blocks.check({"type": "scaled", "fator": 1}, "model.block", reserved=("name",))


def test_import_submodules_imports_every_module_of_a_package(tmp_path, monkeypatch):
    package = tmp_path / "plugin_blocks"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from multitask import registry\nBLOCKS = registry.Registry('block')\n")
    for name in ("first", "second"):
        (package / f"{name}.py").write_text(
            f"from plugin_blocks import BLOCKS\n@BLOCKS.register({name!r})\ndef build():\n    return {name!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import plugin_blocks  # pylint: disable=import-outside-toplevel,import-error

    modules = registry.import_submodules("plugin_blocks", plugin_blocks.__path__)
    assert [m.__name__ for m in modules] == ["plugin_blocks.first", "plugin_blocks.second"]
    assert plugin_blocks.BLOCKS.names == ["first", "second"]


def test_every_kind_uses_the_one_registry_class():
    for blocks in (modeling_registry.ENCODERS, modeling_registry.HEADS, modeling_registry.ARCHITECTURES,
                   weighting.WEIGHTINGS):
        assert type(blocks) is registry.Registry  # pylint: disable=unidiomatic-typecheck
    assert modeling_registry.Registry is registry.Registry
    assert weighting.weighting_class("mgda").registered_name == "mgda"
    with pytest.raises(KeyError, match="weighting 'mgda' is already registered"):
        weighting.register_weighting("mgda")(weighting.weighting_class("mgda"))


def test_importing_a_package_registers_its_blocks_and_keeps_the_old_names():
    assert {"mlp", "cnn", "multimodal", "hierarchical", "keras_layer"} <= set(modeling_registry.ENCODERS.names)
    assert {"classification", "sequence_labeling", "binary", "multilabel", "regression", "contrastive",
            "ranking"} <= set(modeling_registry.HEADS.names)
    assert {"hard_sharing", "cross_stitch", "mmoe", "dselect_k", "cgc", "ple",
            "mtan"} <= set(modeling_registry.ARCHITECTURES.names)
    # The names of the former single modules are re-exported by their packages.
    assert encoders.MLPEncoder is modeling_registry.ENCODERS.lookup("mlp")
    assert heads.ClassificationHead is modeling_registry.HEADS.lookup("classification")
    assert architectures.MMoE is modeling_registry.ARCHITECTURES.lookup("mmoe")
    assert architectures.cgc is modeling_registry.ARCHITECTURES.lookup("cgc")
    for module, names in (
            (encoders, "READOUTS FUSIONS Fusion StagedEncoder flatten_features encoder_stages stage_outputs "
                       "KerasLayerEncoder wrap_encoder clone_layer CNNEncoder MultimodalEncoder HierarchicalEncoder"),
            (heads, "Head BinaryHead MultiLabelHead RegressionHead SequenceLabelingHead ContrastiveHead RankingHead "
                    "REGRESSION_LOSSES MINING"),
            (architectures, "Architecture Part EncoderFactory RESERVED_ARGUMENTS HardSharing CrossStitch "
                            "CrossStitchUnit DSelectK DSelectKGate smooth_step PLE MTAN")):
        for name in names.split():
            assert hasattr(module, name), f"{module.__name__}.{name}"
