import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from applecider_core.config import ConfigError, PresetConfig, from_dict, load_yaml, parse_overrides
from applecider_core.records import (
    METADATA_FEATURES,
    Alert,
    LightCurve,
    RecordError,
    flux_ujy_to_mag,
    mag_to_flux_ujy,
)


def test_mag_to_flux_hand_values():
    flux, err = mag_to_flux_ujy(np.array([23.9, 18.9]), np.array([0.1, 0.05]))
    np.testing.assert_allclose(flux, [1.0, 100.0])
    np.testing.assert_allclose(err, [0.1 * np.log(10) / 2.5, 100 * 0.05 * np.log(10) / 2.5])


@given(st.floats(min_value=5.0, max_value=30.0))
def test_mag_flux_round_trip(mag):
    flux, _ = mag_to_flux_ujy(np.array([mag]))
    np.testing.assert_allclose(flux_ujy_to_mag(flux), [mag], atol=1e-9)


def test_light_curve_validates_and_sorts():
    lc = LightCurve("ZTF1", [3.0, 1.0, 2.0], ["ztfr", "ztfg", "ztfg"], [1, 2, 3], [0.1, 0.2, np.nan], [1, 1, 0])
    ordered = lc.sorted()
    np.testing.assert_array_equal(ordered.mjd, [1.0, 2.0, 3.0])
    assert ordered.num_detections == 2 and len(ordered.detections()) == 2
    with pytest.raises(RecordError, match="unknown bands"):
        LightCurve("ZTF1", [1.0], ["r"], [1.0], [0.1], [True])
    with pytest.raises(RecordError, match="rows"):
        LightCurve("ZTF1", [1.0, 2.0], ["ztfr"], [1.0], [0.1], [True])


def test_alert_metadata_shape_is_checked():
    lc = LightCurve("ZTF1", [1.0], ["ztfg"], [1.0], [0.1], [True])
    alert = Alert("ZTF1", 1, 1.0, "ztfg", 10.0, 20.0, np.zeros(len(METADATA_FEATURES)), lc)
    assert set(alert.metadata_dict()) == set(METADATA_FEATURES)
    with pytest.raises(RecordError, match="metadata"):
        Alert("ZTF1", 1, 1.0, "ztfg", 10.0, 20.0, np.zeros(3), lc)


@dataclasses.dataclass
class Inner:
    lr: float = 0.1


@dataclasses.dataclass
class Outer(PresetConfig):
    PRESETS = {"small": {"width": 4}}
    model_type = "outer"
    width: int = 8
    sizes: tuple[int, ...] = (1, 2)
    bands: tuple[str, ...] | None = None
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_strict_configs_presets_and_overrides(tmp_path):
    config = from_dict(Outer, {"width": 3, "sizes": [4, 5], "inner": {"lr": 1}})
    assert from_dict(Outer, {"bands": ["g", "r"]}).bands == ("g", "r")
    assert config.sizes == (4, 5) and config.inner.lr == 1.0 and isinstance(config.inner.lr, float)
    with pytest.raises(ConfigError, match="unknown keys \\['widht'\\]"):
        from_dict(Outer, {"widht": 3})
    with pytest.raises(ConfigError, match="unknown preset"):
        Outer.from_preset("huge")
    assert Outer.from_preset("small", sizes=(9,)).width == 4
    path = tmp_path / "run.yaml"
    path.write_text("width: 2\ninner:\n  lr: 0.5\n")
    loaded = load_yaml(path, Outer, parse_overrides(["inner.lr=0.25", "width=7"]))
    assert (loaded.width, loaded.inner.lr) == (7, 0.25)
    with pytest.raises(ConfigError):
        parse_overrides(["no-equals-sign"])
