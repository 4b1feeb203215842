"""The learning-loop simulation (`kefu faq learn-eval`) on a tiny synthetic FAQ set, with the
lexical matcher (deterministic, no model needed) unless a test says otherwise."""

import json
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from bot.faq.eval import FileCache, Query
from bot.faq.io import FaqRecord
from bot.faq.learn_eval import Simulation, learn_eval, split, summarize
from tests.bot.faq.conftest import FakeEmbedder
from tests.bot.faq.test_eval import write_jsonl

RECORDS = [
    FaqRecord("ship", ("发货要多久",), "48小时内发货。", "物流问题"),
    FaqRecord("return", ("怎么退货",), "7天无理由退货。", "售后问题"),
    FaqRecord("pay", ("支持哪些付款方式",), "支付宝和微信。", "购买操作"),
]
THRESHOLD = 0.55
# the first half in arrival order: the admin lists the newest first
FIRST = [
    Query("顺丰包邮吗", "ship"), Query("顺丰包邮吗亲", "ship"), Query("包邮吗顺丰快递", "ship"),
    Query("发货要多久", "ship"),  # answered: never listed
    Query("你们老板是谁", None), Query("你们老板是谁啊", None),
    Query("今天天气怎么样", None),
]
SECOND = [Query("顺丰包邮吗？", "ship"), Query("怎么退货", "return"), Query("你们老板是谁呀", None)]


def simulation(**kwargs) -> Simulation:
    return Simulation(RECORDS, FIRST, SECOND, None, THRESHOLD, **kwargs)


def test_only_the_questions_the_bot_left_unanswered_are_listed_newest_first() -> None:
    sim = simulation()
    assert [p.text for p in sim.unanswered] == ["今天天气怎么样", "你们老板是谁啊", "你们老板是谁", "包邮吗顺丰快递",
                                                "顺丰包邮吗亲", "顺丰包邮吗"]
    assert sim.before["recall"] == 0.5 and sim.before["rej_neg"] == 1.0  # 怎么退货 only


def test_the_largest_group_is_taught_first_and_the_next_customer_is_answered() -> None:
    sim = simulation()
    [kefu] = sim.play(rounds=1, actions=1)
    assert (kefu["groups"], kefu["added"], kefu["dismissed"], kefu["mixed"]) == (1, 1, 0, 0)
    assert kefu["questions"] == 3 and kefu["phrasings"] == 3
    assert kefu["recall"] == 1.0 and kefu["precision"] == 1.0 and kefu["rej_neg"] == 1.0


def test_the_naive_loop_takes_the_newest_question_alone_and_dismisses_it() -> None:
    [naive] = simulation().play(rounds=1, actions=1, naive=True)
    assert (naive["added"], naive["dismissed"], naive["questions"]) == (0, 1, 1)
    assert naive["recall"] == 0.5  # learned nothing


def test_a_group_mostly_without_an_faq_is_dismissed_and_rounds_continue_on_what_is_left() -> None:
    first, second = simulation().play(rounds=2, actions=1)
    assert first["added"] == 1
    assert (second["added"], second["dismissed"], second["questions"]) == (0, 1, 2)  # 你们老板是谁 twice
    assert second["recall"] == 1.0 and second["rej_neg"] == 1.0


def test_a_group_of_questions_of_different_faqs_counts_as_mixed_and_teaches_its_majority() -> None:
    def one_group(texts, vectors):
        return [list(range(len(texts)))]

    [kefu] = simulation(grouper=one_group).play(rounds=1, actions=5)
    assert (kefu["groups"], kefu["mixed"], kefu["questions"]) == (1, 1, 6)
    assert kefu["added"] == 1  # three of six name ship: not most without an FAQ


def test_learn_eval_reports_both_loops_side_by_side_and_the_means_over_seeds() -> None:
    queries = FIRST + SECOND
    runs = [learn_eval(RECORDS, queries, None, THRESHOLD, rounds=2, actions=3, seed=seed) for seed in (0, 1)]
    for run in runs:
        first, second = split(queries, run["seed"])
        assert run["first_half"] == len(first) == 5 and run["second_half"] == len(second) == 5
        assert [r["round"] for r in run["kefu"]["rounds"]] == [1, 2] and len(run["naive"]["rounds"]) == 2
        assert run["kefu"]["recall_gain"] == round(run["kefu"]["rounds"][-1]["recall"] - run["before"]["recall"], 4)
    assert split(queries, 0) != split(queries, 1)
    summary = summarize(runs)
    assert [row["seed"] for row in summary["seeds"]] == [0, 1]
    assert summary["mean"]["kefu_gain"] == round((runs[0]["kefu"]["recall_gain"] + runs[1]["kefu"]["recall_gain"]) / 2, 4)


def test_vectors_come_through_the_cache_once(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    cache = FileCache(tmp_path / "vectors.npz")
    sim = Simulation(RECORDS, FIRST, SECOND, embedder, THRESHOLD, cache)
    sim.play(rounds=2, actions=2)
    sim.play(rounds=1, actions=2, naive=True)
    assert len(embedder.calls) == len(set(embedder.calls))  # nothing embedded twice
    cache.save()
    again = FakeEmbedder()
    Simulation(RECORDS, FIRST, SECOND, again, THRESHOLD, FileCache(tmp_path / "vectors.npz")).play(1, 2)
    assert again.calls == []


def test_the_command_prints_one_json_object_and_refuses_a_bad_file_clearly(tmp_path: Path) -> None:
    faq = write_jsonl(tmp_path / "faq.jsonl", [{"id": r.id, "questions": list(r.questions), "answer": r.answer}
                                               for r in RECORDS])
    queries = write_jsonl(tmp_path / "q.jsonl", [{"query": q.text, "faq_id": q.faq_id} for q in FIRST + SECOND])
    runner = CliRunner()
    args = ["faq", "learn-eval", "--faq", faq, "--queries", queries, "--lexical", "--threshold", "0.55",
            "--actions", "2", "--rounds", "2"]
    result = runner.invoke(main, args, env={"KEFU_LOG_FORMAT": "text"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["seed"] == 0 and figures["actions"] == 2 and figures["semantic"] is False
    assert {"top1", "precision", "recall", "rej_neg", "mixed", "added", "dismissed"} <= set(figures["kefu"]["rounds"][1])
    several = json.loads(runner.invoke(main, [*args, "--seed", "1", "--seed", "2"], catch_exceptions=False).output)
    assert [row["seed"] for row in several["seeds"]] == [1, 2] and "kefu_gain" in several["mean"]
    (tmp_path / "bad.jsonl").write_text('{"text": "no query key"}\n', encoding="utf-8")
    bad = runner.invoke(main, ["faq", "learn-eval", "--faq", faq, "--queries", str(tmp_path / "bad.jsonl"), "--lexical"])
    assert bad.exit_code != 0 and "line 1" in bad.output and "Traceback" not in bad.output


def test_the_ceiling_counts_only_the_misses_whose_faq_the_first_half_left_unanswered() -> None:
    # 顺丰包邮吗？ (ship) can be learned from the first half's unanswered list; 能开发票吗 (pay) cannot:
    # no first-half question names pay, so no operator action on that list teaches it
    second = [*SECOND, Query("能开发票吗", "pay")]
    sim = Simulation(RECORDS, FIRST, second, None, THRESHOLD)
    assert sim.reachable == {"misses": 2, "reachable": 1, "recall_ceiling": round(2 / 3, 4)}
    run = learn_eval(RECORDS, FIRST + second, None, THRESHOLD, actions=3, seed=0)
    assert set(run["second_half_misses"]) == {"misses", "reachable", "recall_ceiling"}
    assert run["second_half_misses"]["reachable"] <= run["second_half_misses"]["misses"]
    assert set(summarize([run])["seeds"][0]) >= {"reachable", "misses"}
