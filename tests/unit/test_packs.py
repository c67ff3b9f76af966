"""Pack membership (specs/packs.py): packs of at most N that keep their members."""

import json

import pytest

from adaptive_snakemake.errors import ConfigError
from adaptive_snakemake.specs.packs import assign, sweep_packs
from adaptive_snakemake.specs.parse import parse_specs


def _names(n, start=0):
    return [f"s/i~{i}" for i in range(start, start + n)]


def _nothing_finished(name):
    return False


def test_first_assignment_is_the_sweep_in_chunks_of_n():
    assert assign(_names(5), 2, None, _nothing_finished) == [
        ["s/i~0", "s/i~1"],
        ["s/i~2", "s/i~3"],
        ["s/i~4"],
    ]


def test_new_learners_anywhere_in_the_order_never_move_existing_ones():
    before = assign(_names(6), 3, None, _nothing_finished)
    # New grid values sort in between the old ones: a recomputed chunking would shift all.
    names = ["s/i~new0", *_names(3), "s/i~new1", *_names(3, start=3), "s/i~new2"]
    after = assign(names, 3, before, _nothing_finished)
    assert after[:2] == before
    assert after[2:] == [["s/i~new0", "s/i~new1", "s/i~new2"]]


def test_new_learners_fill_the_last_pack_only_while_none_of_it_has_finished():
    before = assign(_names(4), 3, None, _nothing_finished)  # [0 1 2] [3]
    assert assign(_names(6), 3, before, _nothing_finished)[1] == ["s/i~3", "s/i~4", "s/i~5"]

    def three_finished(name):
        return name == "s/i~3"

    after = assign(_names(6), 3, before, three_finished)
    assert after == [before[0], ["s/i~3"], ["s/i~4", "s/i~5"]]


def test_learners_that_left_the_sweep_leave_their_pack_and_numbers_stay():
    before = assign(_names(6), 2, None, _nothing_finished)
    after = assign(["s/i~0", "s/i~1", "s/i~5"], 2, before, _nothing_finished)
    assert after == [["s/i~0", "s/i~1"], [], ["s/i~5"]]


def test_packs_are_remembered_and_another_n_starts_afresh(tmp_path):
    packs = sweep_packs("s", _names(5), 2, tmp_path)
    assert [pack.members for pack in packs] == [
        ("s/i~0", "s/i~1"),
        ("s/i~2", "s/i~3"),
        ("s/i~4",),
    ]
    assert [pack.id for pack in packs] == ["s.0", "s.1", "s.2"]
    saved = json.loads((tmp_path / "state" / ".packs" / "s.json").read_text())
    assert saved["pack"] == 2 and len(saved["packs"]) == 3
    # a finished learner in the last pack: a new learner opens a new pack
    (tmp_path / "results" / "s" / "i~4").mkdir(parents=True)
    (tmp_path / "results" / "s" / "i~4" / "result.json").write_text("{}")
    again = sweep_packs("s", [*_names(5), "s/i~9"], 2, tmp_path)
    assert [pack.members for pack in again][-2:] == [("s/i~4",), ("s/i~9",)]
    fresh = sweep_packs("s", _names(5), 3, tmp_path)
    assert [list(pack.members) for pack in fresh] == [_names(3), _names(2, start=3)]


def test_a_job_reads_the_packs_without_writing(tmp_path):
    sweep_packs("s", _names(3), 2, tmp_path, remember=False)
    assert not (tmp_path / "state").exists()


def test_an_unwritable_packs_file_is_a_clear_error(tmp_path):
    (tmp_path / "state").write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot remember the packs of sweep 's'"):
        sweep_packs("s", _names(3), 2, tmp_path)


@pytest.mark.parametrize("value", [0, -1, 1.5, "4"])
def test_pack_must_be_a_positive_integer(value):
    document = {
        "sweeps": {
            "s": {"function": "math:sin", "learner": "Learner1D", "pack": value},
        }
    }
    with pytest.raises(ConfigError, match="sweep 's', key 'pack'"):
        parse_specs(document)
