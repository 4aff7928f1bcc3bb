"""The parameter table, config/detect.yaml and README agree; validation rejects bad values."""

import yaml

from tinyvlm_ros import params
from ros_helpers import SOURCE_DIR


def test_config_yaml_lists_every_parameter_with_its_default():
    cfg = yaml.safe_load((SOURCE_DIR / "config" / "detect.yaml").read_text())
    values = cfg["/**"]["ros__parameters"]
    assert values == params.defaults()


def test_readme_documents_every_parameter():
    readme = (SOURCE_DIR / "README.md").read_text()
    missing = [p.name for p in params.PARAMS if f"`{p.name}`" not in readme]
    assert not missing, f"README does not document: {missing}"


def test_validate():
    assert params.validate("score_threshold", 0.5) is None
    assert params.validate("score_threshold", 1) is None  # ints are fine for doubles
    assert "within" in params.validate("score_threshold", 1.5)
    assert "one of" in params.validate("backend", "cloud")
    assert "must be int" in params.validate("max_detections", 2.5)
    assert "must be int" in params.validate("max_detections", True)
    assert "must be bool" in params.validate("one_shot", "yes")
    assert params.validate("use_sim_time", True) is None  # not ours: left to rclpy
    assert params.validate("target_thresholds", "cup:0.4, red block:0.7") is None
    assert "'scissors' has no threshold" in params.validate("target_thresholds", "cup:0.4, scissors")


def test_generated_docs_are_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", SOURCE_DIR / "tools" / "gen_params_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (SOURCE_DIR / "config" / "detect.yaml").read_text() == gen.config_yaml(), \
        "config/detect.yaml is stale: run python tools/gen_params_docs.py"
    assert gen.readme_table() in (SOURCE_DIR / "README.md").read_text(), \
        "README's parameter table is stale: run python tools/gen_params_docs.py"
