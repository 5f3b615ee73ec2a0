"""The words under a table: discovered objects or not (against the 3x3 grid), the slot diagnostic,
smoke numbers that mean nothing; and the budget that results.json records."""

from types import SimpleNamespace

from lsd.reproduction.runner import Budget, budget_record
from lsd.reproduction.verdict import verdict_notes

DIAG = {"loss_right_slots": 0.26, "loss_shuffled_slots": 0.33, "shuffled_over_right": 0.33 / 0.26}


def _methods(trained: float, shipped: float) -> dict:
    return {
        "LSD trained now": {"role": "trained", "metrics": {"fg_ari": trained}, "diagnostic": DIAG},
        "LSD shipped": {"role": "shipped", "metrics": {"fg_ari": shipped}, "diagnostic": None},
        "k-means RGB, k=7": {"role": "baseline", "metrics": {"fg_ari": 0.4794}},
        "grid 3x3": {"role": "baseline", "metrics": {"fg_ari": 0.5231}},
    }


def test_a_model_below_the_grid_has_not_discovered_objects_and_one_above_has():
    notes = verdict_notes(_methods(0.3303, 0.5903), "cpu")
    assert notes[0].startswith("LSD trained now: FG-ARI 33.03, not above the 3x3 grid's 52.31: it has not discovered")
    assert "100k+ GPU steps" in notes[0]
    assert notes[1] == (
        "LSD trained now: denoising loss 0.2600 with its own slots, 0.3300 with slots shuffled across the batch "
        "(x1.27): the decoder uses its slots."
    )
    assert notes[2] == "LSD shipped: FG-ARI 59.03, above the 3x3 grid's 52.31."
    assert not any("k-means" in line for line in notes)


def test_level_losses_say_the_decoder_does_not_use_its_slots():
    methods = {"m": {"role": "trained", "metrics": {}, "diagnostic": {**DIAG, "shuffled_over_right": 1.001}}}
    assert verdict_notes(methods, "cpu")[0].endswith("(x1.00): the decoder does not use its slots.")


def test_smoke_numbers_are_said_to_mean_nothing_and_judge_nothing():
    notes = verdict_notes(_methods(0.3303, 0.5903), "smoke")
    assert notes[0] == "Smoke budget: a check that the whole pipeline runs; its numbers mean nothing."
    assert not any("grid" in line for line in notes)


def test_results_record_the_split_sizes_the_data_phase_used():
    budget = Budget("cpu", "synth-cpu", "the default", num_train=2000, num_validation=200)
    standin = SimpleNamespace(budget=budget, plan=SimpleNamespace(standin=True, record={"spec": {"num_train": 5000}}))
    record = budget_record(standin)
    assert record["num_train"] == 5000 and record["num_validation"] == 200 and record["name"] == "cpu"
    real = SimpleNamespace(budget=budget, plan=SimpleNamespace(standin=False, record={"kind": "movi-e"}))
    assert "num_train" not in budget_record(real) and "num_validation" not in budget_record(real)
