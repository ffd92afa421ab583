"""Settings declared once: each stage's pydantic model is its flags, its config keys and its help.

The drift tests pin what the parsers offer (the flag names and types as they were before the
models carried them), check that every flag of `teacher`, `train` and `eval` is either generated
from a settings field or one of a short list of command options, and that every field has a flag
unless it is declared config-only. The other tests add a field to a model and watch its flag,
config key and help appear, and check the overlay: a flag wins over the config file only where
it was typed, and every bad value is one line naming the flag or the file's line and key.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Annotated

import pytest
import yaml
from pydantic import BaseModel, Field

from engine.cli import build_parser, main
from engine.commands.settingsflags import add_settings_flags, resolve_settings, setting_flags
from engine.errors import InputError
from engine.flagmeta import CONFIG_ONLY, Flag
from engine.pipeline.config import parse_config
from engine.pipeline.plan import build_plan
from engine.stages.eval.settings import EvalSettings
from engine.stages.teacher.settings import TeacherSettings
from engine.stages.train.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"teacher": TeacherSettings, "train": TrainSettings, "eval": EvalSettings}

# Options of the commands that are not settings (modes, inputs the command alone reads, the event log).
COMMAND_OPTIONS = {
    "teacher": {"--rescore", "--stats", "--cancel-batches", "--concepts", "--out", "--resume", "--allow-change", "--json", "--run-dir",
                "--job"},
    "train": set(),
    "eval": {"--run-dir", "--job"},
}
ALWAYS = {"-h", "--help", "--debug", "--config"}
# Settings with no flag, on purpose (prompt files, a jitter only the demo tunes, the backoff cap).
CONFIG_ONLY_KEYS = {
    "teacher": {"backoff_max_s", "system_prompt", "student_template", "synthetic.latency_jitter_s", "phases"},
    "train": set(),
    "eval": {"synthetic.latency_jitter_s"},
}
# The flags these commands offered before the models declared them: names kept exactly
# (eval gained only --config, the settings file the pipeline hands each eval job).
FLAGS_BEFORE = {
    "teacher": "--allow-change --api-key-env --api-retries --backoff-base --base-url --batch-max-requests --batch-poll --budget-usd "
               "--cancel-batches --concepts --concurrency --config "
               "--debug --help --job --json --location --low-score-retries --max-output-tokens --max-records --max-retries --metric "
               "--min-score --mode --model --out --prices --project --provider --rescore --resume --retry-errors --rpm --run-dir "
               "--samples-per-concept --seed --stats --synthetic-defect-rate --synthetic-fix-rate --synthetic-latency "
               "--synthetic-low-quality-rate --synthetic-style --temperature --thinking-budget --timeout --tpm -h",
    "train": "--base-model --batch-size --chat-template --compute-dtype --config --cpu-processes --data --debug --deepspeed --epochs "
             "--eval-steps --fsdp --gpus --grad-accum --gradient-checkpointing --help --job --load-4bit --load-8bit --logging-steps "
             "--lora-alpha --lora-dropout --lora-r --lr --max-seq-len --max-steps --modules-to-save --out --probe-every "
             "--probe-max-new-tokens --probe-prompts --report-to --resume --run-dir --save-steps --save-total-limit --scheduler --seed "
             "--target-modules --warmup-ratio --weight-decay -h",
    "eval": "--adapter --api-key-env --api-retries --backoff-base --base-model --base-url --batch-size --chat-template --concurrency "
            "--config --dataset --debug --dtype --help --job --load-4bit --location --max-new-tokens --max-samples --metric --model --out "
            "--project --prompt-format --provider --repetition-penalty --restart --retries --rpm --run-dir --seed --synthetic-defect-rate "
            "--synthetic-fix-rate --synthetic-latency --synthetic-low-quality-rate --synthetic-style --system-prompt --tag "
            "--temperature --timeout --top-p --tpm -h",
}


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _help_text(parser: argparse.ArgumentParser) -> str:
    """--help as one line: argparse wraps to the terminal's width."""
    return " ".join(parser.format_help().split())


def _leaf_keys(model: type[BaseModel], path: tuple[str, ...] = ()) -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys |= _leaf_keys(ann, path + (name,))
        else:
            keys.add(".".join(path + (name,)))
    return keys


def _config_only(model: type[BaseModel], path: tuple[str, ...] = ()) -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if any(isinstance(m, Flag) and m.config_only for m in field.metadata):
            keys.add(".".join(path + (name,)))
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys |= _config_only(field.annotation, path + (name,))
    return keys


# --- drift: every field a flag, every flag a field -----------------------------------------------


@pytest.mark.parametrize("command", sorted(MODELS))
def test_every_field_has_a_flag_and_every_flag_a_field(command):
    model, parser = MODELS[command], _subparser(command)
    specs = setting_flags(model)
    actions = {o: a for a in parser._actions for o in a.option_strings}
    for spec in specs:  # each generated flag is in the real parser and sets its field
        assert spec.flag in actions, spec.flag
        assert actions[spec.flag].dest == spec.dest
    generated = {s.flag for s in specs}
    by_hand = set(actions) - generated - ALWAYS
    assert by_hand == COMMAND_OPTIONS[command], "a hand-written flag: declare it as a settings field instead"
    keys = _leaf_keys(model)
    assert {a.dest for o, a in actions.items() if o in by_hand}.isdisjoint(keys), "a setting with a hand-written flag"
    assert {s.dest for s in specs} | _config_only(model) == keys, "a field with neither a flag nor CONFIG_ONLY"
    assert _config_only(model) == CONFIG_ONLY_KEYS[command]
    assert len(generated) == len(specs), "two fields with one flag"


@pytest.mark.parametrize("command", sorted(MODELS))
def test_the_flag_names_are_those_of_before(command):
    parser = _subparser(command)
    assert sorted(o for a in parser._actions for o in a.option_strings) == sorted(FLAGS_BEFORE[command].split())


@pytest.mark.parametrize("command", sorted(MODELS))
def test_help_shows_each_default_from_the_model(command):
    parser = _subparser(command)
    actions = {a.dest: a for a in parser._actions}
    for spec in setting_flags(MODELS[command]):
        help_text = actions[spec.dest].help
        if help_text == argparse.SUPPRESS:
            continue
        assert spec.field.description, f"{spec.flag} has no description"
        default = spec.field.get_default(call_default_factory=True)
        if spec.field.is_required() or isinstance(default, bool) or default in (None, ""):
            continue
        shown = format(default, "g") if isinstance(default, float) else str(default)
        assert help_text.endswith(f"(default: {shown})"), (spec.flag, help_text)


def test_help_text_is_generated_not_copied():
    text = _help_text(_subparser("train"))
    assert "LoRA rank (default: 32)" in text and "per device (default: 4)" in text
    assert "evaluate every N steps (default: each epoch)" in text  # what a null default means
    eval_help = _help_text(_subparser("eval"))
    assert "(default: 1200 local, provider default otherwise)" in eval_help
    assert "--synthetic-latency" not in eval_help and "--system-prompt" not in eval_help  # hidden, still accepted
    assert "--synthetic-latency" in _help_text(_subparser("teacher"))


def test_the_commands_hold_no_flag_lists_and_the_pipeline_does_not_import_them():
    for name in ("teacher", "train", "eval"):
        tree = ast.parse((ROOT / "engine" / "commands" / f"{name}.py").read_text())
        assigned = {t.id for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}
        assert not assigned & {"FLAGS", "SWITCHES", "SYNTHETIC_FLAGS", "SYNTHETIC_STYLE_FLAG"}, name
        assert "settings_from" not in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for name in ("example", "plan"):
        tree = ast.parse((ROOT / "engine" / "pipeline" / f"{name}.py").read_text())
        modules = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m.startswith("engine.commands") for m in modules), name


# --- a new setting is one field --------------------------------------------------------------------


class Depth(BaseModel):
    model_config = {"extra": "forbid"}
    depth: int = Field(3, ge=1, description="how deep the test goes")


class TrainPlus(TrainSettings):
    new_knob: Annotated[int, Flag(metavar="K")] = Field(7, ge=1, le=100, description="a knob the test adds")
    nested: Depth = Field(default_factory=Depth)
    quiet_knob: Annotated[str | None, CONFIG_ONLY] = None


def _parser(model: type[BaseModel]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    add_settings_flags(parser, model, config_help="settings file")
    return parser


def test_a_new_field_brings_its_flag_its_config_key_and_its_help(tmp_path):
    parser = _parser(TrainPlus)
    text = _help_text(parser)
    assert "--new-knob K" in text and "a knob the test adds (default: 7)" in text
    assert "--nested-depth NESTED.DEPTH" in text and "how deep the test goes (default: 3)" in text
    assert "--quiet-knob" not in text
    assert resolve_settings(TrainPlus, parser.parse_args([]), section="train").new_knob == 7
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  new_knob: 5\n  nested:\n    depth: 9\n  quiet_knob: set in the file\n")
    s = resolve_settings(TrainPlus, parser.parse_args(["--config", str(cfg)]), section="train")
    assert (s.new_knob, s.nested.depth, s.quiet_knob) == (5, 9, "set in the file")
    s = resolve_settings(TrainPlus, parser.parse_args(["--config", str(cfg), "--new-knob", "6", "--nested-depth", "2"]), section="train")
    assert (s.new_knob, s.nested.depth, s.quiet_knob) == (6, 2, "set in the file")
    with pytest.raises(InputError) as err:
        resolve_settings(TrainPlus, parser.parse_args(["--new-knob", "0"]), section="train")
    assert str(err.value) == "--new-knob: Input should be greater than or equal to 1"
    cfg.write_text("train:\n  lr: 0.001\n  new_knob: 500\n")
    with pytest.raises(InputError) as err:
        resolve_settings(TrainPlus, parser.parse_args(["--config", str(cfg)]), section="train")
    assert str(err.value) == f"{cfg}:3: train.new_knob: Input should be less than or equal to 100"


def test_a_new_field_reaches_the_real_command(monkeypatch, capsys):
    from engine.commands import train as train_cmd

    monkeypatch.setattr(train_cmd, "TrainSettings", TrainPlus)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "a knob the test adds (default: 7)" in " ".join(capsys.readouterr().out.split())
    assert main(["train", "--new-knob", "0"]) == 2
    assert capsys.readouterr().err == "po-tui train: error: --new-knob: Input should be greater than or equal to 1\n"


def test_a_field_whose_type_has_no_flag_form_is_refused_at_build_time():
    class Bad(BaseModel):
        names: list[str] = Field(default_factory=list)

    with pytest.raises(TypeError, match="Bad.names: no command-line form"):
        setting_flags(Bad)

    class Copied(BaseModel):
        size: Annotated[int, Flag(default_means="32")] = 32

    with pytest.raises(ValueError, match="shown from the model"):
        setting_flags(Copied)


# --- the overlay: a flag wins where typed -----------------------------------------------------------


def test_a_flag_beats_the_config_only_where_typed(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text("train:\n  batch_size: 2\n  load_4bit: true\n  lr: 0.001\n")
    parser = _parser(TrainSettings)
    untyped = resolve_settings(TrainSettings, parser.parse_args(["--config", str(cfg)]), section="train")
    assert (untyped.batch_size, untyped.load_4bit, untyped.lr) == (2, True, 0.001)
    # Typed with the model's own default: still typed, so it wins (no comparison with defaults).
    typed = resolve_settings(TrainSettings, parser.parse_args(["--config", str(cfg), "--batch-size", "4"]), section="train")
    assert (typed.batch_size, typed.load_4bit, typed.lr) == (4, True, 0.001)


def test_nested_flags_merge_into_the_files_nested_settings(tmp_path):
    cfg = tmp_path / "teacher.yaml"
    cfg.write_text("provider: synthetic\nsynthetic:\n  defect_rate: 0.5\n  latency_jitter_s: 0.25\n")
    args = _parser(TeacherSettings).parse_args(["--config", str(cfg), "--synthetic-fix-rate", "1", "--synthetic-style", "compact"])
    s = resolve_settings(TeacherSettings, args, section="teacher").synthetic
    assert (s.defect_rate, s.latency_jitter_s, s.fix_rate, s.style) == (0.5, 0.25, 1.0, "compact")
    cfg.write_text("teacher:\n  synthetic: 5\n")
    args = _parser(TeacherSettings).parse_args(["--config", str(cfg), "--synthetic-style", "compact"])
    with pytest.raises(InputError) as err:
        resolve_settings(TeacherSettings, args, section="teacher")
    assert str(err.value) == f"{cfg}:2: teacher.synthetic: expected a mapping of settings, got int"


def test_eval_reads_its_settings_from_a_file(tmp_path):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": "d.jsonl", "out": "o", "tag": "t", "provider": "synthetic", "max_samples": 3,
                                   "synthetic": {"style": "compact"}}))
    s = resolve_settings(EvalSettings, _parser(EvalSettings).parse_args(["--config", str(cfg), "--tag", "u"]), section="eval")
    assert (s.dataset, s.tag, s.provider, s.max_samples, s.synthetic.style) == ("d.jsonl", "u", "synthetic", 3, "compact")


# --- bad values: one line naming the flag, or the file, line and key --------------------------------


@pytest.mark.parametrize(("argv", "config", "expect"), [
    (["train", "--batch-size", "0"], None, "po-tui train: error: --batch-size: Input should be greater than or equal to 1"),
    (["train", "--batch-size", "x"], None, "po-tui train: error: argument --batch-size: invalid int value: 'x' (see --help)"),
    (["train", "--seed", "-1"], None, "po-tui train: error: argument --seed: expected a seed from 0 to 4294967295, got -1 (see --help)"),
    (["train", "--lr", "nan"], None, "po-tui train: error: --lr: Input should be a finite number"),
    (["train"], "train:\n  lora_r: 8\n  batch_size: 0\n",
     "po-tui train: error: {cfg}:3: train.batch_size: Input should be greater than or equal to 1"),
    (["train", "--batch-size", "0"], "train:\n  batch_size: 2\n",
     "po-tui train: error: --batch-size: Input should be greater than or equal to 1"),
    (["train", "--data", "d", "--out", "o", "--load-4bit"], "train:\n  load_8bit: true\n",
     "po-tui train: error: {cfg}:1: train: choose one of load_4bit and load_8bit"),
    (["eval", "--tag", "t", "--out", "o"], None, "po-tui eval: error: --dataset: required"),
    (["eval", "--dataset", "d", "--tag", "t", "--out", "o", "--provider", "synthetic", "--synthetic-defect-rate", "2"], None,
     "po-tui eval: error: --synthetic-defect-rate: Input should be less than or equal to 1"),
    (["eval", "--provider", "synthetic"], "dataset: d\ntag: bad/tag\nout: o\n",
     "po-tui eval: error: {cfg}:2: tag: use letters, digits, '_', '-', '.' (it names the results file)"),
    (["teacher", "--concepts", "c", "--out", "o", "--concurrency", "0"], None,
     "po-tui teacher: error: --concurrency: Input should be greater than or equal to 1"),
    (["teacher", "--concepts", "c", "--out", "o", "--provider", "openai"], None,
     "po-tui teacher: error: --model: --model is required with --provider openai"),
])
def test_bad_values_are_one_line_naming_the_flag_or_the_key(tmp_path, monkeypatch, capsys, argv, config, expect):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PO_TUI_DEBUG", raising=False)
    cfg = tmp_path / "cfg.yaml"
    if config is not None:
        cfg.write_text(config)
        argv = [*argv, "--config", str(cfg)]
    before = sorted(tmp_path.rglob("*"))
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    assert code == 2
    assert capsys.readouterr().err == expect.format(cfg=cfg) + "\n"
    assert sorted(tmp_path.rglob("*")) == before


# --- the pipeline hands each eval job its resolved settings ------------------------------------------


def test_the_pipeline_hands_each_eval_job_a_settings_file(tmp_path):
    config = parse_config({
        "teacher": {"provider": "synthetic", "concurrency": 3, "synthetic": {"defect_rate": 0.0, "latency_jitter_s": 0.5}},
        "tiny_model": {"build": True},
        "eval": {"teacher_reference": True, "max_samples": 5, "batch_size": 2, "retries": 1, "seed": 9, "max_new_tokens": 64},
    })
    run = tmp_path / "run"
    jobs = {job.name: job for job in build_plan(config, run)}
    parser = _subparser("eval")
    seen = {}
    for tag in ("teacher", "baseline", "student"):
        argv = jobs[f"eval-{tag}"].argv(False, tag == "student")
        assert argv[:3] == ["eval", "--config", str(run / f"eval-{tag}.settings.yaml")]
        typed = {o for o in argv if o.startswith("--")}
        # Only what the run directory decides is a flag; every setting travels in the file.
        assert typed <= {"--config", "--dataset", "--out", "--tag", "--base-model", "--adapter", "--restart"}
        seen[tag] = resolve_settings(EvalSettings, parser.parse_args(argv[1:]), section="eval")
    ref, base, student = seen["teacher"], seen["baseline"], seen["student"]
    assert (ref.provider, ref.concurrency, ref.max_samples, ref.retries, ref.seed) == ("synthetic", 3, 5, 1, 9)
    assert (ref.synthetic.defect_rate, ref.synthetic.latency_jitter_s) == (0.0, 0.5)
    assert (base.provider, base.batch_size, base.max_new_tokens, base.base_model) == ("local", 2, 64, str(run / "tiny-model"))
    assert student.adapter == str(run / "student") and student.restart and not base.restart
    assert base.dataset == str(run / "data" / "val.jsonl") and base.out == str(run / "eval") and base.tag == "baseline"
