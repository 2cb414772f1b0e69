import numpy as np
import pandas as pd
import pytest

from applecider_core import taxonomy as tx


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("Ia-91T", "SN Ia"), ("SN Ia-91T-like", "SN Ia"), ("II P", "SN IIP"), ("Ic BL", "SN Ic"),
        ("Cataclysmic", "CV"), ("Tidal Disruption Event", "TDE"), ("QSO", "AGN"), ("Type II", "SN II"),
        ("IaPec(N)", "SN Ia"), ("Iazhost=0.088376)", "SN Ia"), ("SN Iax[02cx-like]", "SN Ia"),
        ("Lensed SN Ia", "SN Ia"), ("Super-Luminous Ic", "SLSN-I"), ("TDE-H+He", "TDE"), ("SN Ibn", "SN Ibn"),
    ],
)  # fmt: skip
def test_normalise_known_strings(raw, label):
    result = tx.normalise_label(raw)
    assert result.status == "mapped"
    assert result.label == label


def test_questioned_and_unusable_strings_are_reported_not_mapped():
    assert tx.normalise_label("AGN?").questioned
    for raw in ("SN", "SN I", "Candidate", "IIn/Ibn", "SLSN", ""):
        result = tx.normalise_label(raw)
        assert (result.status, result.label) == ("ambiguous", None), raw
    for raw in ("BS", "Iz", "definitely-not-a-class"):
        assert tx.normalise_label(raw).status == "unmapped"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (["II", "IIP"], "SN IIP"), (["Ic", "SLSN-I"], "SLSN-I"), (["Ib", "Ic"], "SN Ib/c"),
        (["IIP", "IIb"], "SN II"), (["Ia", "II"], None), (["TDE?", "IIn"], "SN IIn"), (["AGN?"], "AGN"),
        (["SLSN-II", "IIb"], None), (["SN"], None),
    ],
)  # fmt: skip
def test_combine_claims(claims, expected):
    assert tx.combine_claims(claims) == expected


def test_taxonomies_and_encoding():
    assert tx.FINE.num_classes == 10 and tx.SPECTRA.num_classes == 11 and tx.FUSION.num_classes == 5
    assert tx.SPECTRA.classes[-1] == "SLSN-I"
    encoded = tx.FINE.encode(["SN Ia", "SN Ibn", "SLSN-I", None, "TDE"])
    np.testing.assert_array_equal(encoded, [0, 1, -1, -1, 9])  # Ibn is a child of Ib; SLSN-I is not a fine class
    with pytest.raises(tx.TaxonomyError, match="allowed"):
        tx.FINE.index("SN Iax")


def test_projection_matrix_sums_fine_into_fusion_and_rejects_unmappable():
    matrix = tx.projection_matrix(tx.SPECTRA.classes, tx.FUSION)
    assert matrix.shape == (11, 5)
    np.testing.assert_array_equal(matrix.sum(axis=1), np.ones(11))
    sn_one = [tx.SPECTRA.classes[i] for i in np.flatnonzero(matrix[:, 0])]
    assert sn_one == ["SN Ia", "SN Ib", "SN Ic", "SLSN-I"]
    sn_two = [tx.SPECTRA.classes[i] for i in np.flatnonzero(matrix[:, 1])]
    assert sn_two == ["SN II", "SN IIP", "SN IIn", "SN IIb"]
    with pytest.raises(tx.TaxonomyError, match="Nova"):
        tx.projection_matrix(["SN Ia", "Nova"], tx.FUSION)


def _split_claims(values):
    return [claim for value in values.dropna() for claim in str(value).split(";")]


def test_every_raw_label_in_shared_data_is_mapped_or_reported(shared_data):
    labels = pd.read_csv(shared_data / "labels" / "ztf_object_labels.csv")
    spectra = pd.read_parquet(shared_data / "spectra" / "osc_spectra.parquet", columns=["raw_type", "label", "source"])
    raws = set(_split_claims(labels["raw_label"])) | set(_split_claims(spectra["raw_type"]))
    results = [tx.normalise_label(raw) for raw in raws]
    assert all(r.status in ("mapped", "ambiguous", "unmapped") for r in results)
    assert all((r.label is not None) == (r.status == "mapped") for r in results)
    unmapped = {r.raw for r in results if r.status == "unmapped"}
    listed = set(pd.read_csv(shared_data / "labels" / "unmapped_raw_labels.tsv", sep="\t")["raw_label"])
    assert unmapped <= listed  # anything we cannot map is one the bundle itself lists as unmapped
    # The deciding table's raw strings reproduce the bundle's label for every object.
    combined = labels["raw_label"].map(lambda raw: tx.combine_claims(str(raw).split(";")))
    assert (combined == labels["label"]).all()
    # Spectra: the only differences are TDE-catalogue members without an explicit type ("Candidate").
    spectra_combined = spectra["raw_type"].map(lambda raw: tx.combine_claims(str(raw).split(";")))
    differ = spectra[spectra_combined != spectra["label"]]
    assert set(differ["label"]) == {"TDE"} and spectra_combined[differ.index].isna().all()
