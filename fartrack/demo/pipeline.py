"""``make demo``: synthetic data -> training stages 1, 2, 3 -> pico model -> evaluation against baselines -> report.

Seven steps, each announced as ``[demo i/7] ...`` with its elapsed time, all writing under one folder ``out``:

1. data and settings: ``out/data/synthetic/{train,val}`` (:func:`fartrack.data.synthetic_writer.write_synthetic`, which
   reuses a complete folder) and the path settings ``out/workspace/lib/{train/admin,test/evaluation}/local.py``
   (the user's own settings files are never read or written);
2.-4. ``tracking/train.py`` per stage with ``--save_dir out/train --resume auto --settings_root out/workspace``;
   stages 2 and 3 start from the previous stage's final checkpoint (``MODEL.PRETRAIN_PTH``). A stage whose final
   checkpoint (epoch ``TRAIN.EPOCH``) exists is reused, an interrupted one continues. The loss curve is read
   from the trainer's log, plotted to ``out/plots/stage<k>_loss.png`` and checked to go down (a loud warning
   otherwise);
5. ``out/final_pico.pth.tar``: the first 6 layers of the stage-3 checkpoint (a variant file as written by
   ``tracking/extract_variant.py``), checked to load and track with the evaluation config;
6. ``out/results/<tracker>/``: the final model through ``tracking/test.py`` and the ``static``, ``csrt`` and
   ``kcf`` baselines (:mod:`fartrack.evaluation.baselines`) on the synthetic val split; complete results are
   reused while the data and the model (sha256) are unchanged;
7. ``out/results.md`` / ``results.json`` (AO, SR0.5, SR0.75, FPS), ``out/plots/synthetic_success.png`` and
   ``out/demo.mp4`` (one val sequence, ground truth and predictions drawn).

Any failure stops the demo with :class:`DemoError` naming the step (and the log file of a failed command).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from fartrack.demo.losses import check_loss_decrease, plot_loss_curve, read_loss_log
from fartrack.utils.io import atomic_write_text

__all__ = ["DEFAULT_CONFIG", "STAGES", "DemoError", "DemoOptions", "StepFailure", "run_demo", "run_logged"]

#: Config name used for all three stages (experiments/<script>/<config>.yaml).
DEFAULT_CONFIG = "synthetic_pico_cpu"
#: (script, short description) of the training stages, in order.
STAGES: Tuple[Tuple[str, str], ...] = (
    ("fartrack", "frame-level pretraining"),
    ("fartrack_distill", "self-distillation"),
    ("fartrack_sparse", "autoregressive sparsification"),
)
PICO_LAYERS = 6
TOTAL_STEPS = 7
BENCHMARK = "synthetic"
#: (results folder, display name, baseline kind or None for the trained model), in table order.
TRACKERS = (
    ("fartrack_pico", "FARTrack-pico (ours)", None),
    ("static", "static first-frame box", "static"),
    ("csrt", "OpenCV CSRT", "opencv:csrt"),
    ("kcf", "OpenCV KCF", "opencv:kcf"),
)
STAMP = "demo_stamp.json"


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and, for a failed command, the log to read."""


class StepFailure(RuntimeError):
    """Raised inside a step; ``log`` is the file with the full output, when there is one."""

    def __init__(self, message: str, log: Optional[Path] = None) -> None:
        super().__init__(message)
        self.log = log


@dataclass
class DemoOptions:
    """Everything the demo can be told (``tracking/demo.py`` maps its arguments onto these)."""

    out: Path
    config: str = DEFAULT_CONFIG
    train_sequences: int = 200
    val_sequences: int = 20
    frames: int = 80
    size: Tuple[int, int] = (320, 240)  # width, height
    difficulty: str = "easy"
    seed: int = 0
    workers: int = field(default_factory=lambda: max(1, min(2, os.cpu_count() or 1)))
    set_all: List[str] = field(default_factory=list)            # overrides for every stage
    set_stage: Dict[int, List[str]] = field(default_factory=dict)  # stage number -> overrides
    device: Optional[str] = None                                 # training device (default: cuda if available)
    eval_device: str = "cpu"

    def data_params(self) -> Dict[str, Any]:
        """The data generator's parameters (what decides whether existing results still apply)."""
        return {"train_sequences": self.train_sequences, "val_sequences": self.val_sequences, "seed": self.seed,
                "difficulty": self.difficulty, "num_frames": self.frames, "size": list(self.size)}


# ------------------------------------------------------------------------------------------------ helpers
def run_logged(cmd: Sequence[str], log: Path, *, cwd: Optional[Path] = None, echo: bool = True) -> None:
    """Run ``cmd``, streaming its output to stdout (unless ``echo`` is False) and appending it to ``log``.

    Raises :class:`StepFailure` with the last output line when the command exits non-zero.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):  # the demo's commands always run one process
        env.pop(key, None)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    tail = ""
    with open(log, "ab") as handle:
        handle.write(f"\n$ {' '.join(str(c) for c in cmd)}\n".encode())
        proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                cwd=None if cwd is None else str(cwd))
        try:
            while True:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                handle.write(chunk)
                text = decoder.decode(chunk)
                tail = (tail + text)[-8000:]
                if echo:
                    sys.stdout.write(text)
                    sys.stdout.flush()
            status = proc.wait()
        except BaseException:  # Ctrl-C reaches the child too (same process group); wait for it to stop
            proc.wait()
            raise
        finally:
            proc.stdout.close()
    if status != 0:
        lines = [line.strip() for line in tail.replace("\r", "\n").splitlines() if line.strip()]
        cause = lines[-1] if lines else "no output"
        raise StepFailure(f"{Path(str(cmd[1])).name} exited with status {status}: {cause}", log)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> Optional[Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=1, sort_keys=True) + "\n")


def _print(message: str = "") -> None:
    print(message, flush=True)


# ------------------------------------------------------------------------------------------------ the demo
class Demo:
    """The demo's state: paths, options, and what each step produced."""

    def __init__(self, options: DemoOptions, scripts_dir: Path) -> None:
        self.opts = options
        self.scripts = Path(scripts_dir)
        out = Path(options.out).resolve()
        self.out = out
        self.data = out / "data" / "synthetic"
        self.workspace = out / "workspace"
        self.save_dir = out / "train"
        self.logs = out / "logs"
        self.plots = out / "plots"
        self.results = out / "results"
        self.final = out / "final_pico.pth.tar"
        self.finals: Dict[int, Path] = {}
        self.loss_checks: Dict[str, Dict[str, Any]] = {}
        self.warnings: List[str] = []
        self.summary: Dict[str, Any] = {}
        self.eval_config: Optional[str] = None  # what test.py is given as CONFIG (set by the final-model step)

    # -------------------------------------------------------------------------------------- running steps
    def run(self) -> Dict[str, Any]:
        """Run the seven steps; returns the summary (also printed). Raises :class:`DemoError` on a failure."""
        start = time.perf_counter()
        _print(f"[demo] everything goes under {self.out}")
        steps: List[Tuple[str, Callable[[], Optional[str]]]] = [("data and settings", self.step_data)]
        for number, (script, what) in enumerate(STAGES, start=1):
            steps.append((f"train stage {number} ({script} / {self.opts.config}): {what}",
                          lambda n=number: self.step_train(n)))
        steps += [("final pico model", self.step_final_model),
                  (f"evaluate on the {BENCHMARK} val split", self.step_evaluate),
                  ("report: table, success plot, demo video", self.step_report)]
        for index, (title, fn) in enumerate(steps, start=1):
            self._run_step(index, title, fn)
        self.summary["seconds"] = time.perf_counter() - start
        self._print_summary()
        return self.summary

    def _run_step(self, index: int, title: str, fn: Callable[[], Optional[str]]) -> None:
        label = f"[demo {index}/{TOTAL_STEPS}]"
        _print(f"\n{label} {title}")
        start = time.perf_counter()
        try:
            note = fn()
        except KeyboardInterrupt:
            raise
        except StepFailure as exc:
            where = f"; full output in {exc.log}" if exc.log else ""
            raise DemoError(f"step {index}/{TOTAL_STEPS} ({title}) failed: {exc}{where}") from exc
        except Exception as exc:  # noqa: BLE001 -- every failure stops the demo, naming the step
            raise DemoError(f"step {index}/{TOTAL_STEPS} ({title}) failed: {type(exc).__name__}: {exc}") from exc
        _print(f"{label} {note or 'done'} ({time.perf_counter() - start:.1f} s)")

    # -------------------------------------------------------------------------------------- 1. data
    def step_data(self) -> str:
        from fartrack.config import write_local_settings
        from fartrack.data.synthetic_writer import write_synthetic as write

        params = self.opts.data_params()
        _print(f"synthetic data: {params} -> {self.data}")
        report = write(self.data, train_sequences=params["train_sequences"], val_sequences=params["val_sequences"],
                       seed=params["seed"], difficulty=params["difficulty"], num_frames=params["num_frames"],
                       size=tuple(self.opts.size), workers=self.opts.workers, progress=_DataProgress())
        reused = isinstance(report, dict) and report.get("up_to_date")
        for split in ("train", "val"):
            if not (self.data / split / "list.txt").is_file():
                raise StepFailure(f"the generator finished but {self.data / split / 'list.txt'} does not exist")
        repo_root = self.scripts.parent
        write_local_settings(repo_root, self.data.parent, self.save_dir, force=True, repo_root=self.workspace)
        return f"data {'reused' if reused else 'written'}: {self.data}; path settings in {self.workspace / 'lib'}"

    # -------------------------------------------------------------------------------------- 2-4. training
    def _stage_overrides(self, number: int) -> List[str]:
        overrides = list(self.opts.set_all) + list(self.opts.set_stage.get(number, []))
        if number > 1:
            previous = self.finals[number - 1]
            overrides.append(f"MODEL.PRETRAIN_PTH={previous.relative_to(self.save_dir).as_posix()}")
        return overrides

    def _stage_config(self, script: str, overrides: List[str]):
        from fartrack.config import load_config, parse_overrides

        return load_config(script, self.opts.config, overrides=parse_overrides(overrides) or None)

    def step_train(self, number: int) -> str:
        from fartrack.evaluation.runner import config_label, net_class_name
        from fartrack.train.checkpointing import checkpoint_path, run_dir

        script = STAGES[number - 1][0]
        overrides = self._stage_overrides(number)
        cfg = self._stage_config(script, overrides)
        name = config_label(self.opts.config)
        folder = run_dir(self.save_dir, script, name)
        net_type = net_class_name(cfg)
        final = checkpoint_path(folder, net_type, int(cfg.TRAIN.EPOCH))
        self._check_stage_stamp(number, script, overrides, folder, net_type)
        if final.is_file():
            _print(f"stage {number} done, reusing {final}")
            note = f"stage {number} reused ({final.name})"
        else:
            cmd = [sys.executable, self.scripts / "train.py", "--script", script, "--config", self.opts.config,
                   "--save_dir", self.save_dir, "--mode", "single", "--resume", "auto",
                   "--settings_root", self.workspace]
            if self.opts.device:
                cmd += ["--device", self.opts.device]
            if overrides:
                cmd += ["--set", *overrides]
            run_logged(cmd, self.logs / f"stage{number}_train.log", cwd=self.scripts.parent)
            if not final.is_file():
                raise StepFailure(f"train.py finished but the final checkpoint {final} was not written",
                                   self.logs / f"stage{number}_train.log")
            note = f"stage {number} trained: {final}"
        self.finals[number] = final
        self._loss_report(number, self.save_dir / "logs" / f"{script}-{name}.log")
        return note

    def _check_stage_stamp(self, number: int, script: str, overrides: List[str], folder: Path, net_type: str) -> None:
        """Refuse to mix runs: checkpoints in the stage's folder must come from the same config and overrides."""
        from fartrack.train.checkpointing import list_checkpoints

        stamp = {"script": script, "config": self.opts.config, "overrides": overrides}
        path = self.save_dir / f"stage{number}_{STAMP}"
        saved = _read_json(path)
        if saved is not None and saved != stamp and list_checkpoints(folder, net_type):
            raise StepFailure(
                f"{folder} holds checkpoints trained with other settings (config {saved.get('config')!r}, overrides "
                f"{saved.get('overrides')}; now {self.opts.config!r}, {overrides}); delete {self.save_dir} or "
                "choose another --out to train again")
        if saved != stamp:
            _write_json(path, stamp)

    def _loss_report(self, number: int, log: Path) -> None:
        curve = read_loss_log(log)
        check = check_loss_decrease(curve.values)
        png = plot_loss_curve(curve, self.plots / f"stage{number}_loss.png",
                              f"stage {number} ({STAGES[number - 1][0]}): {curve.key}")
        self.loss_checks[f"stage{number}"] = {"first": check.first, "last": check.last, "values": check.count,
                                              "decreased": check.decreased, "plot": str(png), "log": str(log)}
        _print(f"stage {number} loss ({curve.key}, {check.count} logged values): mean of the first {check.window} "
               f"{check.first:.4f} -> mean of the last {check.window} {check.last:.4f}; plot {png}")
        if check.decreased:
            return
        if check.count < 2:
            message = (f"WARNING: stage {number} logged {check.count} loss value(s): cannot check that its loss went "
                       f"down (log more often: TRAIN.PRINT_INTERVAL); see {log}")
        else:
            message = (f"WARNING: stage {number} loss did not go down ({check.first:.4f} -> {check.last:.4f} over "
                       f"{check.count} logged values); see {png} and {log}")
        self.warnings.append(message)
        _print("!" * 100 + f"\n{message}\n" + "!" * 100)

    # -------------------------------------------------------------------------------------- 5. final model
    def test_config(self, number: int) -> Tuple[Any, str]:
        """(resolved config, what to pass to test.py as CONFIG) of stage ``number``'s tracker.

        The config name when the stage has no overrides; otherwise a resolved YAML in the workspace.
        """
        script = STAGES[number - 1][0]
        overrides = [o for o in self._stage_overrides(number) if not o.startswith("MODEL.PRETRAIN_PTH=")]
        cfg = self._stage_config(script, overrides)
        if not overrides:
            return cfg, self.opts.config
        import yaml

        from fartrack.config import config_to_dict

        path = self.workspace / f"{script}-{Path(self.opts.config).stem}-demo.yaml"
        atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        return cfg, str(path)

    def step_final_model(self) -> str:
        from fartrack.evaluation.datasets import load_benchmark
        from fartrack.evaluation.video import read_image
        from fartrack.models.checkpoint import extract_state_dict, read_checkpoint, save_checkpoint
        from fartrack.models.pretrained import state_dict_depth, variant_state_dict
        from fartrack.tracker.build import build_tracker

        source = self.finals[3]
        digest = sha256_file(source)
        existing = read_checkpoint(self.final) if self.final.is_file() else None
        if isinstance(existing, dict) and existing.get("source_sha256") == digest:
            note = f"reusing {self.final} (made from {source.name})"
        else:
            ckpt = read_checkpoint(source)
            state = extract_state_dict(ckpt, source)
            layers = min(PICO_LAYERS, state_dict_depth(state))
            kept = list(range(1, layers + 1))
            save_checkpoint(self.final, variant_state_dict(state, kept), net_type=str(ckpt.get("net_type")),
                            epoch=int(ckpt.get("epoch", 0)),
                            extra={"layers": layers, "kept_layers": kept, "source": source.name,
                                   "source_sha256": digest})
            note = f"wrote {self.final} ({layers} layers of {source.name})"
        cfg, self.eval_config = self.test_config(3)
        seq = load_benchmark(BENCHMARK, self.data)[0]
        tracker = build_tracker(cfg, self.final, device="cpu", backend="torch")
        tracker.initialize(read_image(seq.frames[0]), seq.ground_truth[0].tolist())
        box = tracker.track(read_image(seq.frames[1]))
        if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
            raise StepFailure(f"{self.final} loads but tracks {box} on {seq.name}")
        _print(f"{self.final} loads with fartrack_sparse {self.eval_config} and tracks ({seq.name} frame 2: "
               f"{[round(float(v), 1) for v in box]})")
        return note

    # -------------------------------------------------------------------------------------- 6. evaluation
    def step_evaluate(self) -> str:
        from fartrack.evaluation.baselines import run_baseline
        from fartrack.evaluation.datasets import load_benchmark
        from fartrack.evaluation.results import result_complete

        sequences = load_benchmark(BENCHMARK, self.data)
        counts = {s.name: len(s.frames) for s in sequences}
        model_sha = sha256_file(self.final)
        ran = []
        for folder_name, display, kind in TRACKERS:
            folder = self.results / folder_name
            stamp = {"tracker": kind or "fartrack", "data": self.opts.data_params(), "sequences": counts}
            if kind is None:
                stamp.update(model_sha256=model_sha, config=self.eval_config)
            saved = _read_json(folder / STAMP)
            complete = all(result_complete(folder, name, n) for name, n in counts.items())
            if saved == stamp and complete:
                _print(f"{display}: complete results for this data and model exist, reusing {folder}")
                continue
            # Results without a matching stamp (other data or model, or an interrupted run) are all recomputed.
            if saved is not None:
                _print(f"{display}: the data or the model changed since {folder} was written; recomputing")
            _print(f"{display}: running on {len(counts)} sequences -> {folder}")
            if kind is None:
                self._run_fartrack(folder)
            else:
                summary = run_baseline(kind, BENCHMARK, self.data, folder, force=True)
                _print(summary.text())
                if summary.failed:
                    first = summary.failed[0]
                    raise StepFailure(f"{display} failed on {len(summary.failed)} sequence(s), first {first.name}: "
                                       f"{first.error}")
            _write_json(folder / STAMP, stamp)
            ran.append(folder_name)
        return f"ran {', '.join(ran)}" if ran else "all results reused"

    def _run_fartrack(self, folder: Path) -> None:
        cmd = [sys.executable, self.scripts / "test.py", "fartrack_sparse", self.eval_config, "--dataset", BENCHMARK,
               "--checkpoint", self.final, "--data_root", self.data, "--results_dir", folder, "--threads", "0",
               "--device", self.opts.eval_device, "--force"]
        run_logged(cmd, self.logs / "evaluate_fartrack.log", cwd=self.scripts.parent)

    # -------------------------------------------------------------------------------------- 7. report
    def step_report(self) -> str:
        from fartrack.demo.report import (format_markdown, format_text, median_sequence, table_rows,
                                          write_demo_video, write_results_json)
        from fartrack.evaluation.analysis import analyse
        from fartrack.evaluation.datasets import load_benchmark
        from fartrack.evaluation.plots import plot_reports

        sequences = load_benchmark(BENCHMARK, self.data)
        folders = [self.results / t[0] for t in TRACKERS]
        reports = analyse(folders, sequences, BENCHMARK, "got10k", [t[1] for t in TRACKERS])
        rows = table_rows(reports, sequences)
        for row, (_, _, kind) in zip(rows, TRACKERS):
            if kind == "static":
                row["FPS"] = None  # it computes nothing: its 'speed' only measures a function call
        frames = sum(len(s.frames) for s in sequences)
        caption = (f"{BENCHMARK} val split ({len(sequences)} sequences, {frames} frames, difficulty "
                   f"{self.opts.difficulty}); GOT-10k protocol, scores in %; FPS = frames / tracker seconds "
                   f"(image reading excluded; none for the static box, which computes nothing)")
        table = format_text(rows)
        _print(caption + "\n\n" + table)
        atomic_write_text(self.out / "results.md", format_markdown(rows, caption))
        write_results_json(self.out / "results.json", rows, reports,
                           {"dataset": BENCHMARK, "protocol": "got10k", "caption": caption,
                            "data": self.opts.data_params(), "loss": self.loss_checks, "warnings": self.warnings})
        plots = plot_reports(reports, self.plots)
        name = median_sequence(reports[0])
        seq = next(s for s in sequences if s.name == name)
        video = write_demo_video(seq, [(TRACKERS[0][1], folders[0]), (TRACKERS[2][1], folders[2])],
                                 self.out / "demo.mp4")
        self.summary.update(table=table, rows=rows, plots=[str(p) for p in plots], video=str(video),
                            video_sequence=name)
        return f"wrote {self.out / 'results.md'}, {self.out / 'results.json'}, {plots[0]}, {video}"

    # -------------------------------------------------------------------------------------- summary
    def _print_summary(self) -> None:
        s = self.summary
        out = self.out
        lines = [
            "",
            f"[demo] finished in {s['seconds'] / 60:.1f} min ({s['seconds']:.0f} s). Everything is under {out}:",
            f"  results table    {out / 'results.md'} (and results.json)",
            f"  success plot     {', '.join(s['plots'])}",
            f"  loss plots       {self.plots}/stage{{1,2,3}}_loss.png",
            f"  demo video       {s['video']} (val sequence {s['video_sequence']}: ground truth white, "
            f"FARTrack green, CSRT orange)",
            f"  final model      {self.final}",
            f"  checkpoints      {self.save_dir / 'checkpoints' / 'train'}",
            f"  logs             {self.save_dir / 'logs'} (trainer), {self.logs} (commands run by the demo)",
            f"  data             {self.data} (train/, val/); path settings in {self.workspace / 'lib'}",
            f"  evaluate again:  python tracking/test.py fartrack_sparse {self.eval_config} --dataset {BENCHMARK} "
            f"--checkpoint {self.final} --data_root {self.data} --results_dir DIR",
        ]
        lines += [f"  {w}" for w in self.warnings]
        _print("\n".join(lines))


class _DataProgress:
    """``progress(done, total)`` callback of the data generator: one line per ~10 % of the sequences."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        tenth = (10 * done) // max(total, 1)
        if tenth != self.shown or done == total:
            self.shown = tenth
            _print(f"  data: {done}/{total} sequences ({time.perf_counter() - self.start:.0f} s)")


def run_demo(options: DemoOptions, scripts_dir: Path) -> Dict[str, Any]:
    """Run the demo with ``options``; ``scripts_dir`` is the folder holding ``train.py`` and ``test.py``.

    Returns the summary; raises :class:`DemoError` (naming the step) on any failure.
    """
    return Demo(options, scripts_dir).run()
