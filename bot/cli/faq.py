"""`kefu faq ...`: import and export the FAQ, and measure its answers (eval, learn-eval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click

from bot.cli.options import config_option, open_db
from bot.core.config import Config


@click.group()
def faq() -> None:
    """Import and export FAQs (JSON lines)."""


@faq.command("import")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def faq_import(config: Config, file: str) -> None:
    """Import FAQs from FILE: lines of {"id", "questions": [...], "answer", "category"}."""
    from bot.faq import conflicts
    from bot.faq.io import FaqFileError, apply, read_file

    open_db(config)
    try:
        records = read_file(file)
        report = apply(records)
    except FaqFileError as exc:
        raise click.ClickException(f"{exc} (nothing was imported)") from None
    click.echo(f"imported {Path(file).name}: {report.created} created, {report.updated} updated, "
               f"{report.unchanged} unchanged")
    from bot.faq.store import FaqStore

    store = FaqStore(check_seconds=0)
    store.refresh(force=True)
    store.wait_warm()  # new phrasings are embedded once here, for every process
    found = conflicts.for_faqs(store, conflicts.imported_ids(r.id for r in records),
                               conflicts.answering_threshold(config.faq.threshold))
    for conflict in found:  # imported anyway: two FAQs may rightly share words, the operator decides
        click.echo(f"warning: {conflicts.describe(conflict)}", err=True)


@faq.command("export")
@config_option
@click.argument("file", type=click.Path(dir_okay=False))
def faq_export(config: Config, file: str) -> None:
    """Export every FAQ to FILE as JSON lines."""
    from bot.faq.io import export_file

    open_db(config)
    count = export_file(file)
    click.echo(f"exported {count} FAQs to {file}")


def _faq_and_queries(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The `--faq` and `--queries` files of the measuring commands (the shared data's formats)."""
    fn = click.option("--queries", "queries_file", required=True, type=click.Path(dir_okay=False, exists=True),
                      help='Queries: JSON lines {"query", "faq_id" | null}; null = no FAQ should answer.')(fn)
    return click.option("--faq", "faq_file", required=True, type=click.Path(dir_okay=False, exists=True),
                        help='FAQ file: JSON lines {"id", "questions": [...], "answer"}.')(fn)


@faq.command("eval")
@config_option
@_faq_and_queries
@click.option("--threshold", type=float, default=None, help="Confidence threshold (default: [faq].threshold).")
@click.option("--lexical", is_flag=True, help="Without the embedding model (the fallback matcher).")
def faq_eval(config: Config, faq_file: str, queries_file: str, threshold: float | None, lexical: bool) -> None:
    """Measure the matcher on FAQ and query files, in memory (no database); prints one JSON object."""
    from bot.faq.eval import evaluate
    from bot.faq.semantic import load_embedder

    embedder = None if lexical else load_embedder()
    result = evaluate(faq_file, queries_file, config.faq.threshold if threshold is None else threshold, embedder)
    click.echo(json.dumps(result, ensure_ascii=False))


@faq.command("learn-eval")
@config_option
@_faq_and_queries
@click.option("--rounds", type=click.IntRange(1, 50), default=1, show_default=True,
              help="Operator rounds on the first half's unanswered questions.")
@click.option("--actions", type=click.IntRange(1, 10000), default=30, show_default=True,
              help="Groups the operator acts on per round (K).")
@click.option("--seed", "seeds", type=int, multiple=True,
              help="Seed of the split in halves (default 0); repeat it to cross-validate and get the means.")
@click.option("--threshold", type=float, default=None, help="Confidence threshold (default: [faq].threshold).")
@click.option("--cache", "cache_file", type=click.Path(dir_okay=False), default=None,
              help="An .npz file that keeps the vectors between runs (created when missing).")
@click.option("--lexical", is_flag=True, help="Without the embedding model (the fallback matcher).")
def faq_learn_eval(config: Config, faq_file: str, queries_file: str, rounds: int, actions: int,
                   seeds: tuple[int, ...], threshold: float | None, cache_file: str | None, lexical: bool) -> None:
    """Measure the learning loop: the bot answers half the queries, an operator acts on the
    unanswered groups, the other half is answered; beside a naive loop. One JSON object."""
    from bot.faq.eval import FileCache, read_queries
    from bot.faq.io import FaqFileError, read_file
    from bot.faq.learn_eval import learn_eval, summarize
    from bot.faq.semantic import load_embedder

    try:
        records, queries = read_file(faq_file), read_queries(queries_file)
    except (FaqFileError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    embedder = None if lexical else load_embedder()
    cache = FileCache(cache_file) if cache_file else None
    limit = config.faq.threshold if threshold is None else threshold
    runs = [learn_eval(records, queries, embedder, limit, rounds, actions, seed, cache) for seed in seeds or (0,)]
    if cache is not None:
        cache.save()
    click.echo(json.dumps(runs[0] if len(runs) == 1 else summarize(runs), ensure_ascii=False))
