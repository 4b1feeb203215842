import json
from pathlib import Path

from click.testing import CliRunner

from bot.cli import main
from bot.faq.eval import Query, score
from bot.faq.matcher import Candidate, Match

FAQ = [
    {"id": "ship", "questions": ["发货要多久", "几天能发货"], "answer": "48小时内发货。"},
    {"id": "return", "questions": ["怎么退货", "退货流程是什么"], "answer": "7天无理由退货。"},
    {"id": "size", "questions": ["尺码怎么选"], "answer": "看尺码表。"},
]
QUERIES = [
    {"query": "發貨要多久？", "faq_id": "ship", "type": "pos"},
    {"query": "退货流程是什么呢", "faq_id": "return", "type": "pos"},
    {"query": "今天天气怎么样", "faq_id": None, "type": "neg_off_domain"},
]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_faq_eval_prints_one_json_object_with_every_figure(tmp_path: Path) -> None:
    faq, queries = write_jsonl(tmp_path / "faq.jsonl", FAQ), write_jsonl(tmp_path / "q.jsonl", QUERIES)
    result = CliRunner().invoke(main, ["faq", "eval", "--faq", faq, "--queries", queries, "--threshold", "0.5",
                                       "--lexical"], env={"KEFU_LOG_FORMAT": "text"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert {"top1", "hit5", "precision", "recall", "rej_neg", "threshold", "qps", "build_s"} <= set(figures)
    assert figures["top1"] == 1.0 and figures["hit5"] == 1.0
    assert figures["precision"] == 1.0 and figures["recall"] == 1.0 and figures["rej_neg"] == 1.0
    assert figures["threshold"] == 0.5 and figures["qps"] > 0 and figures["semantic"] is False
    assert figures["engine"] is None  # lexical: no embedding engine


def test_an_answer_to_a_query_no_faq_answers_costs_precision_and_rej_neg() -> None:
    queries = [Query("a", "x"), Query("b", "y"), Query("c", None), Query("d", None)]
    right, wrong = Candidate("x", 0.9, "a"), Candidate("z", 0.9, "b")
    matches = [
        Match((right, Candidate("y", 0.1, "?"))),  # answered, right
        Match((Candidate("z", 0.3, "?"), Candidate("y", 0.2, "b"))),  # abstained; gold is 2nd
        Match((wrong,)),  # a no-answer query answered: wrong
        Match((Candidate("z", 0.2, "?"),)),  # abstained: right
    ]
    figures = score(queries, matches, threshold=0.5)
    assert figures["top1"] == 0.5 and figures["hit5"] == 1.0
    assert figures["precision"] == 0.5 and figures["recall"] == 0.5 and figures["rej_neg"] == 0.5
