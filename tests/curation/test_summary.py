"""The summary lines the CLI and ``manage.py demo`` print: each number says what it counts."""
from __future__ import annotations

from curation import summary
from curation.pilots import METRIC


def test_betr_line_counts_documents_as_documents_and_tokens_as_tokens():
    line = summary.betr_line({"holdout_accuracy": 0.97, "kept_per_source": {"tech": 12, "business": 177},
                              "kept": 189, "token_fraction": 0.1, "kept_tokens": 40_120, "total_tokens": 401_000})
    assert line == ("BETR classifier: held-out accuracy 0.97; kept the best-scored 10% of tokens (40,120 of "
                    "401,000 tokens): 189 documents, by source: business 177, tech 12")


def test_pool_table_puts_unique_used_of_available_beside_repetitions():
    rows = [{"pool": "web", "weight": 0.4, "unique_documents": 28, "available_documents": 32, "repetitions": 0.875},
            {"pool": "news", "weight": 0.6, "unique_documents": 10, "available_documents": 10, "repetitions": 3.0}]
    header, first, second = summary.pool_table(rows)
    assert header.split() == ["pool", "weight", "unique", "used", "/", "available", "repetitions"]
    assert first.split() == ["news", "0.600", "10", "/", "10", "3.00"]
    assert second.split() == ["web", "0.400", "28", "/", "32", "0.88"]
    assert header.index("available") + len("available") == first.index("10 / 10") + len("10 / 10"), "aligned"


def test_prediction_line_names_the_unit_direction_and_band_level():
    predicted = {"metric": METRIC, "higher_is_better": False, "value": 8.126, "low": 7.931, "high": 8.322,
                 "level": 0.95, "provenance": {"c": "proxy", "tau": "defaults"}}
    assert summary.prediction_line(predicted) == (
        "Predicted proxy_cross_entropy (nats per token, lower is better): 8.126, 95% band [7.931, 8.322]; "
        "parameters from: proxy (tau: defaults)")
    flagged = {**predicted, "extrapolated": True, "clamped": True, "provenance": {"c": "pilots", "tau": "pilots"}}
    assert summary.prediction_line(flagged).endswith(
        "parameters from: pilots; EXTRAPOLATED beyond the observed sizes or repetitions; "
        "CLAMPED to the metric's possible range")
    mine = {**predicted, "metric": "accuracy", "higher_is_better": True, "level": None, "provenance": {}}
    assert summary.prediction_line(mine) == ("Predicted accuracy (higher is better): 8.126, band [7.931, 8.322]; "
                                             "parameters from: unknown")


def test_contamination_and_budget_lines_say_what_was_left_out_and_why():
    found = {"contaminated": 3, "documents": 2225,
             "benchmarks": {"b1": {"name": "gsm8k", "documents": 2}, "b2": {"name": "sciq", "documents": 1}}}
    assert summary.contamination_line(found, "http://x/contamination/") == (
        "Decontamination: 3 of 2,225 documents hold a benchmark example and are in no selection (gsm8k 2, sciq 1)"
        "  (http://x/contamination/)")
    assert summary.contamination_line(None).startswith("Decontamination: off")
    policy = {"budget_samples": 50.0, "budget_tokens": 2140.0, "prune": {"keep": "hard", "reason": "abundant"},
              "betr": {"token_fraction": 0.0417, "reason": "at most 4 times"}}
    assert summary.budget_policy_lines(policy) == [
        "Budget: 50 samples (2.14e+03 tokens)", "  prune: keep hard: abundant", "  BETR: keep 4.2% of tokens: at most 4 times"]


def test_pilots_lines_say_who_made_the_observations_and_where_the_half_life_came_from():
    tiny = {"origin": "tiny_lm", "observations": 20, "parameters": 1_478_144, "tokens": 1_234_567,
            "seconds": 95.2, "tokens_per_second": 12_968.0, "device": "cpu", "metric": "tiny_lm_cross_entropy"}
    fit = {"parameters": {"tau": 3.21}, "provenance": {"tau": "tiny_lm"}, "at_bound": {}}
    assert summary.pilots_lines(tiny, fit) == [
        "Pilots: 20 tiny-LM runs (1.5M parameters) on 1,234,567 tokens in 95.2 s (12,968 tokens/s on cpu)",
        "Repetition half-life: tau = 3.21 repetitions (from tiny_lm)"]
    proxy = {"origin": "proxy", "observations": 51, "metric": "proxy_cross_entropy"}
    default = {"parameters": {"tau": 6.0}, "provenance": {"tau": "defaults"}, "at_bound": {}}
    assert summary.pilots_lines(proxy, default) == [
        "Pilots: 51 bigram-proxy observations (pilot_model tiny_lm measures repetition)",
        "Repetition half-life: tau = 6.00 repetitions (a default: no pilot run repeats a pool)"]
    bound = {"parameters": {"tau": 6.0}, "provenance": {"tau": "defaults"},
             "at_bound": {"tau": "fit ended on its bound 0.05: the observations do not identify it; the default 6 is "
                                 "used"}}
    assert summary.pilots_lines(tiny, bound)[1] == (
        "Repetition half-life: tau = 6.00 repetitions (not identified: fit ended on its bound 0.05: the "
        "observations do not identify it; the default 6 is used)")
    user = {"origin": "pilot_runs", "observations": 30, "metric": "accuracy"}
    assert summary.pilots_lines(user, {"parameters": {"c": 1.0}, "provenance": {}}) == [
        "Pilots: 30 of your pilot runs of accuracy"]
