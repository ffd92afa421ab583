"""The evaluation's CUDA paths, checked on the CPU: the out-of-memory split and the greedy
fingerprint's batch size.

No GPU runs here, so CUDA is simulated where the logic depends on it: `generate` raises
`torch.OutOfMemoryError` the way the caching allocator does, and `torch.cuda.is_available` is
patched where only the device decision matters. What a GPU alone can show (real memory, bf16
kernels) is measured by `bench/gpu_check.py`.
"""

from __future__ import annotations

import contextlib
import io
import json
import weakref
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from engine.cli import main  # noqa: E402
from engine.errors import InputError  # noqa: E402
from engine.stages.concepts import generate_concepts  # noqa: E402
from engine.stages.eval.generate import USER, Request, Turn  # noqa: E402
from engine.stages.eval.settings import EvalSettings  # noqa: E402
from engine.store.atomic import atomic_write_jsonl  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's decode steps are all overhead: one thread is far faster than several
    spinning on two shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from engine.stages.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("evalgpu") / "tiny", seed=0)


@pytest.fixture(scope="module")
def concepts(tmp_path_factory) -> Path:
    return atomic_write_jsonl(tmp_path_factory.mktemp("evalgpu-data") / "concepts.jsonl", generate_concepts(4, 9))


def _requests(n: int) -> list[Request]:
    """Short prompts of different lengths (left padding happens), cheap to decode on two cores."""
    rows = generate_concepts(n, 3)
    return [Request(i, (Turn(USER, f"CONCEPT:\n{r['concept'][:20 + 9 * i]}"),), 7, r["concept_id"]) for i, r in enumerate(rows)]


def _local(tiny: Path, batch: int):
    from engine.stages.eval.local import LocalModel, plan_local

    s = EvalSettings(dataset="-", out="-", tag="t", base_model=str(tiny), batch_size=batch, max_new_tokens=6)
    return LocalModel.load(s, plan_local(s)).configure(s)


def _answers(model, requests) -> dict[int, tuple[str, int]]:
    got: dict[int, tuple[str, int]] = {}
    model.run(requests, lambda g: got.__setitem__(g.key, (g.text, g.batch_size)))
    return got


class _SimulatedCuda:
    """`generate` that runs out of memory like the CUDA allocator: a batch above `fits` does, and so
    does any batch while a failed batch's input tensor is still referenced (its KV cache and
    activations would still be allocated). Records what each call saw."""

    def __init__(self, real, fits: int) -> None:
        self.real, self.fits = real, fits
        self.failed: list[weakref.ref] = []
        self.calls: list[tuple[int, int]] = []  # (batch, failed batches still alive)

    def __call__(self, *, input_ids, **kwargs):
        alive = sum(1 for ref in self.failed if ref() is not None)
        self.calls.append((len(input_ids), alive))
        if len(input_ids) > self.fits or alive:
            self.failed.append(weakref.ref(input_ids))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return self.real(input_ids=input_ids, **kwargs)


def test_oom_split_frees_the_failed_batch_first_and_stops_at_the_size_that_fits(tiny, monkeypatch):
    requests = _requests(8)
    model = _local(tiny, 8)
    expected = _answers(model, requests)  # no OOM: one batch of 8
    fake = _SimulatedCuda(model.model.generate, fits=2)
    monkeypatch.setattr(model.model, "generate", fake)
    from engine.stages.eval import local

    released: list[int] = []
    real_release = getattr(local, "release_memory", lambda: None)
    monkeypatch.setattr(local, "release_memory", lambda: (released.append(len(fake.calls)), real_release()), raising=False)
    warnings: list[str] = []
    model.on_warning = warnings.append

    got = _answers(model, requests)

    # 8 -> 4 + 4 -> 2 + 2 + 2 + 2: the split stops at the batch that fits, never reaching 1, and
    # no half ever ran while a failed batch's tensors were still referenced.
    assert fake.calls == [(8, 0), (4, 0), (2, 0), (2, 0), (4, 0), (2, 0), (2, 0)]
    assert all(ref() is None for ref in fake.failed)
    assert released == [1, 2, 5]  # memory released after each failure, before the next decode
    assert model.oom_splits == 3 and len(warnings) == 3 and "batch of 8" in warnings[0]
    # Greedy answers on the CPU do not depend on the batch; each records the batch it came from.
    assert {k: text for k, (text, _) in got.items()} == {k: text for k, (text, _) in expected.items()}
    assert {b for _, b in got.values()} == {2} and {b for _, b in expected.values()} == {8}


def test_a_single_prompt_that_runs_out_of_memory_is_an_error_not_a_loop(tiny, monkeypatch):
    from engine.errors import StageFailed

    model = _local(tiny, 4)
    fake = _SimulatedCuda(model.model.generate, fits=0)
    monkeypatch.setattr(model.model, "generate", fake)
    with pytest.raises(StageFailed, match=r"CUDA out of memory decoding a single prompt \(\d+ tokens, up to 6 new\)"):
        _answers(model, _requests(2))
    assert [b for b, _ in fake.calls] == [2, 1]


def test_the_eval_command_reports_an_unsplittable_oom_in_one_line_and_keeps_the_answers(tiny, concepts, tmp_path, monkeypatch):
    from engine.runlog.tail import read_events
    from engine.stages.eval.local import LocalModel

    real = LocalModel.generate_ids
    calls: list[int] = []

    def generate_ids(self, prompts, config, *, seed=None):
        calls.append(len(prompts))
        if len(calls) > 1:  # the first batch fits; then memory runs out for good
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, prompts, config, seed=seed)

    monkeypatch.setattr(LocalModel, "generate_ids", generate_ids)
    out = tmp_path / "eval"
    argv = ["eval", "--dataset", str(concepts), "--base-model", str(tiny), "--tag", "baseline", "--out", str(out),
            "--batch-size", "2", "--max-new-tokens", "4", "--retries", "0"]
    rc, stdout, err = _cli(argv)
    assert rc == 1 and stdout == "" and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("po-tui eval: failed: CUDA out of memory decoding a single prompt")
    assert calls == [2, 2, 1]
    assert "po-tui eval: warning: CUDA out of memory on a batch of 2: splitting it in halves" in err
    events = read_events(out / "baseline.events.jsonl")
    assert [e["data"]["code"] for e in events if e["type"] == "error"] == ["stage_failed"]
    assert [e["data"].get("code") for e in events if e["type"] == "warning"] == ["oom_split"]
    # The first batch's answers are stored: the rerun (memory back) evaluates only the other two.
    monkeypatch.setattr(LocalModel, "generate_ids", real)
    rc, _, err = _cli(argv)
    assert rc == 0 and "2/4 cases already evaluated" in err, err


# --- the greedy fingerprint and the device --------------------------------------------------------


def _fp(device: str | None, **kw) -> dict:
    s = EvalSettings(dataset="d", out="o", tag="student", base_model="m", **kw)
    return s.fingerprint(cases="c", prompt="p", adapter_sha256=None, base_config_sha256=None, device=device)


def test_greedy_fingerprint_holds_the_batch_size_on_cuda_only():
    assert _fp("cuda", batch_size=8)["batch_size"] == 8
    assert _fp("cuda", batch_size=8) != _fp("cuda", batch_size=16)
    # CPU fp32 greedy output does not depend on the batch: the fingerprint is what it always was.
    assert "batch_size" not in _fp("cpu", batch_size=8) and _fp("cpu", batch_size=8) == _fp("cpu", batch_size=16)
    assert "batch_size" not in _fp(None)
    # Sampling depends on it everywhere; providers never have one.
    assert _fp("cpu", batch_size=4, temperature=0.7)["batch_size"] == 4
    s = EvalSettings(dataset="d", out="o", tag="teacher", provider="synthetic")
    assert "batch_size" not in s.fingerprint(cases="c", prompt="p", adapter_sha256=None, base_config_sha256=None, device="cuda")


def _fake_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_plan_and_prepare_put_the_batch_size_in_the_fingerprint_when_cuda_decodes(tiny, concepts, tmp_path, monkeypatch):
    from engine.stages.eval.stage import prepare

    s = EvalSettings(dataset=str(concepts), out=str(tmp_path / "cpu"), tag="baseline", base_model=str(tiny), batch_size=8)
    cpu = prepare(s)
    assert cpu.plan.device == "cpu" and "batch_size" not in cpu.fingerprint
    _fake_cuda(monkeypatch)
    gpu = prepare(s.model_copy(update={"out": str(tmp_path / "gpu")}))
    assert gpu.plan.device == "cuda" and gpu.fingerprint["batch_size"] == 8


def _start_partial(s: EvalSettings) -> Path:
    """A cases file as a run interrupted before its first answer leaves it (header only)."""
    from engine.stages.eval.stage import _header, prepare

    p = prepare(s)
    p.store.open(_header(p), restart=False)
    p.store.close()
    return p.store.path


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_a_gpu_evaluation_resumed_at_another_batch_size_is_refused_in_one_line(tiny, concepts, tmp_path, monkeypatch):
    from engine.stages.eval.stage import prepare

    _fake_cuda(monkeypatch)
    out = tmp_path / "eval"
    s = EvalSettings(dataset=str(concepts), out=str(out), tag="baseline", base_model=str(tiny), batch_size=8)
    cases = _start_partial(s)
    before = cases.read_bytes()
    rc, stdout, err = _cli(["eval", "--dataset", str(concepts), "--base-model", str(tiny), "--tag", "baseline",
                            "--out", str(out), "--batch-size", "4"])
    assert rc == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
    assert "batch_size 8 -> 4" in err and "pass --batch-size 8 to resume it" in err and str(cases) in err
    assert "Traceback" not in err and cases.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [cases.name]
    prepare(s)  # the batch size it was started with resumes it
    assert json.loads(before.splitlines()[0])["fingerprint"]["batch_size"] == 8


def test_a_cpu_evaluation_still_resumes_at_any_batch_size(tiny, concepts, tmp_path):
    from engine.stages.eval.stage import prepare

    s = EvalSettings(dataset=str(concepts), out=str(tmp_path), tag="baseline", base_model=str(tiny), batch_size=8)
    _start_partial(s)
    assert prepare(s.model_copy(update={"batch_size": 2})).resumed


def test_other_changes_do_not_suggest_a_batch_size(tiny, concepts, tmp_path, monkeypatch):
    from engine.stages.eval.stage import prepare

    _fake_cuda(monkeypatch)
    s = EvalSettings(dataset=str(concepts), out=str(tmp_path), tag="baseline", base_model=str(tiny), batch_size=8)
    _start_partial(s)
    with pytest.raises(InputError) as err:
        prepare(s.model_copy(update={"batch_size": 4, "max_new_tokens": 16}))
    assert "batch_size 8 -> 4" in str(err.value) and "--batch-size 8" not in str(err.value)


def test_eval_benchmark_agreement_rates():
    import importlib.util

    spec = importlib.util.spec_from_file_location("eval_throughput", Path(__file__).resolve().parents[1] / "bench" / "eval_throughput.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    reference = [[1, 2, 3, 4], [5, 6, 7, 8]]
    assert bench.agreement(reference, reference) == (1.0, 1.0)
    # One answer flips its third token: half the answers agree, 6 of 8 tokens come before a difference.
    assert bench.agreement([[1, 2, 9, 9], [5, 6, 7, 8]], reference) == (0.5, 0.75)
    assert bench.agreement([[0, 2, 3, 4], [0, 6, 7, 8]], reference) == (0.0, 0.0)
