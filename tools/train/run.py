"""One training run on transformers.Trainer: preflight, load, train with atomic checkpoints, metrics and a
progress bar, Ctrl-C → checkpoint → exit, then the adapter, the resolved config and the summary.

The loop, gradient accumulation, LR schedule, optimizer (incl. bitsandbytes 8-bit / paged), RNG-state
checkpoints and data skipping on resume are the Trainer's; qkv adds only what it lacks: atomic
checkpoints, a completion marker, a preflight, measurements and the memory comparison."""

from __future__ import annotations

import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qkv.tools.errors import BadInput
from qkv.tools.train import checkpoints as ckpt
from qkv.tools.train.arguments import training_args
from qkv.tools.train.config import TrainConfig, to_yaml
from qkv.tools.train.distributed import check_scale_out, scale_out_note, world
from qkv.tools.train.schema import TrainSummary


def _trainer_class():
    from transformers import Trainer

    from qkv.tools.hf_models import disable_bnb_cpu_repack

    class QkvTrainer(Trainer):
        """Trainer whose checkpoints appear atomically, whose eval passes are guarded for 4-bit LoRA, and whose
        loss can be chunked over the vocabulary (train.loss) with activations offloaded (train.offload_activations)."""

        keep_checkpoints = 2
        chunked_loss: tuple[int, str] | None = None  # (tokens per chunk, backend) when train.loss is chunked
        offload_activations = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            from qkv.tools.train.loss import offload_context

            if not model.training:
                # Eval: each rank's own token mean. transformers 5 counts the tokens of the whole eval batch across
                # ranks and scales by the rank count, which the eval loop's removal of the duplicate rows that
                # pad an uneven last batch then breaks (measured: eval loss 3.93 under 2 processes, 5.12 alone,
                # on the same weights and rows). Alone the two are the same number.
                num_items_in_batch = None
            target = model
            if self.chunked_loss is not None and "labels" in inputs:
                if self.accelerator.unwrap_model(model) is not model:
                    raise BadInput("train.loss chunked runs the model's body and head itself, which would bypass "
                                   f"the {type(model).__name__} wrapper (gradient sync / sharding)",
                                   expected="a single-process run, or train.loss: standard under DDP/FSDP")
                # the Trainer's own compute_loss runs around it: num_items_in_batch, gradient-accumulation and
                # multi-device scaling stay exactly as for the model's built-in loss
                target = _ChunkedLossModel(model, *self.chunked_loss)
            with offload_context(self.offload_activations, cuda=self.args.device.type == "cuda"):
                return super().compute_loss(target, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)

        def _save_checkpoint(self, model, trial) -> None:
            run_dir = Path(self.args.output_dir)
            step = self.state.global_step
            staging = run_dir / f"{ckpt.STAGING_PREFIX}{step}"
            main = self.is_world_process_zero()
            if main:
                shutil.rmtree(staging, ignore_errors=True)
            self.accelerator.wait_for_everyone()  # no rank writes into staging before rank 0 has emptied it
            self.args.output_dir = str(staging)  # the Trainer writes checkpoint-N inside output_dir
            try:
                super()._save_checkpoint(model, trial)  # every rank: its RNG state (and, under FSDP, its shards)
            finally:
                self.args.output_dir = str(run_dir)
            # Sealed only once every rank has written its part: a rank killed mid-save leaves a staging folder
            # that --resume ignores, never a checkpoint-N missing rng_state_1.pth.
            self.accelerator.wait_for_everyone()
            if main:
                ckpt.finalize(staging / f"checkpoint-{step}", run_dir / f"checkpoint-{step}", step)
                ckpt.prune(run_dir, self.keep_checkpoints)

        def evaluate(self, *args, **kwargs):
            # an eval-mode no_grad forward would repack 4-bit weights on AVX512-BF16 CPUs (STACK-NOTES)
            disable_bnb_cpu_repack(self.model)
            return super().evaluate(*args, **kwargs)

    return QkvTrainer


class _ChunkedLossModel:
    """Stands in for the model inside Trainer.compute_loss: same inputs, returns {'loss'} computed by the chunked
    linear cross-entropy (qkv.tools.train.loss) instead of the full logits."""

    def __init__(self, model, chunk_tokens: int, backend: str) -> None:
        self.model, self.chunk_tokens, self.backend = model, chunk_tokens, backend

    def __call__(self, **inputs):
        from qkv.tools.train.loss import causal_lm_loss

        n = inputs.pop("num_items_in_batch", None)
        return {"loss": causal_lm_loss(self.model, inputs, chunk_tokens=self.chunk_tokens, backend=self.backend,
                                       num_items_in_batch=n)}


class StopOnSignal:
    """Ctrl-C / SIGTERM: finish the current step, save a checkpoint, stop. A second Ctrl-C leaves at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nqkv train: stop requested, saving a checkpoint after this step (Ctrl-C again to quit now)",
              file=sys.stderr, flush=True)

    def agreed(self, device=None) -> bool:
        """Whether any rank was asked to stop. Every rank must stop after the same step (a rank that steps on
        alone blocks in the next all-reduce), and a signal may reach the ranks on either side of a step end."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.requested
        import torch

        # on the Trainer's device: a CPU tensor for gloo, this rank's GPU for NCCL
        flag = torch.tensor([1 if self.requested else 0], dtype=torch.int32, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def callback(self):
        from transformers import TrainerCallback

        outer = self

        class _Cb(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if outer.agreed(args.device):
                    control.should_save = True
                    control.should_training_stop = True

        return _Cb()


@dataclass
class PreparedRun:
    """Everything loaded and wired, before the first step (the pilot measures perplexity here)."""

    cfg: TrainConfig
    out: Path
    model: Any
    tokenizer: Any
    trainer: Any
    metrics: Any
    stopper: StopOnSignal
    info: dict[str, int]
    data_stats: dict[str, int]
    resume_from: Path | None
    notes: list[str] = field(default_factory=list)
    processes: int = 1  # accelerate launch / torchrun world size
    heldout_text: str = ""


def resolve_resume(out: Path, resume: bool) -> tuple[Path | None, list[str]]:
    """The checkpoint to resume from (latest complete), or refuse to overwrite a run without --resume.
    Under several processes only rank 0 deletes what a crash left; every rank picks the same checkpoint."""
    notes: list[str] = []
    removed = ckpt.clean_incomplete(out) if world()[0] == 0 else []
    if removed:
        notes.append("removed incomplete checkpoint(s) left by a crash: " + ", ".join(p.name for p in removed))
    latest = ckpt.latest_complete(out)
    if resume:
        if latest is None:
            notes.append(f"--resume: no complete checkpoint in {out}; starting from step 0")
        return latest, notes
    if latest is not None:
        raise BadInput(f"{out} already holds {latest.name} from an earlier run",
                       expected="--resume to continue it, or another --out folder for a fresh run")
    return None, notes


def _quiet_libraries() -> None:
    """Silence transformers' logging and the warnings the user cannot act on, before the model loads."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    import warnings

    # raised from inside transformers/peft on every wrap; nothing the user can act on
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def _reset_metrics(out: Path, resume_from: Path | None, main: bool) -> Path:
    """metrics.jsonl for this run: cut back to the resumed checkpoint's step, or removed for a fresh run."""
    from qkv.tools.train.metrics import truncate_after

    metrics_path = out / "metrics.jsonl"
    if main and resume_from is not None:
        truncate_after(metrics_path, ckpt.step_of(resume_from) or 0)
    elif main and metrics_path.exists():
        metrics_path.unlink()
    return metrics_path


def _build_trainer(cfg: TrainConfig, model, tok, args, train_ds, eval_ds, metrics_path: Path, cuda: bool,
                   show_progress: bool) -> tuple[Any, Any, StopOnSignal, list[str]]:
    """(trainer, metrics callback, stop-on-signal, loss notes): the QkvTrainer with qkv's callbacks and loss."""
    from transformers import ProgressCallback

    from qkv.tools.train.callbacks import MetricsCallback, ProgressBar
    from qkv.tools.train.data import PadCollator

    metrics = MetricsCallback(metrics_path)
    stopper = StopOnSignal()
    trainer_cls = _trainer_class()
    trainer = trainer_cls(model=model, args=args, train_dataset=train_ds,
                          eval_dataset=eval_ds if len(eval_ds) else None,
                          # no processing_class: the Trainer would copy the 33 MB tokenizer into every checkpoint
                          data_collator=PadCollator(tok.pad_token_id),
                          callbacks=[metrics, stopper.callback()])
    trainer.keep_checkpoints = cfg.run.keep_checkpoints
    trainer.chunked_loss, loss_notes = _loss_setup(cfg, model, cuda)
    trainer.offload_activations = cfg.train.offload_activations
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(ProgressBar(metrics, enabled=show_progress))
    return trainer, metrics, stopper, loss_notes


def prepare(cfg: TrainConfig, *, base_dir: Path | None = None, resume: bool = False,
            progress: bool = True) -> PreparedRun:
    """Preflight (no model), then load, build data and the Trainer. Bad configs fail before the load."""
    from qkv.tools.train.data import build_datasets, heldout_text
    from qkv.tools.train.preflight import preflight

    rows = preflight(cfg, base_dir)
    import torch

    cuda = torch.cuda.is_available()
    check_scale_out(cfg, cuda)
    rank, processes = world()
    main = rank == 0  # the one process that writes the run's shared files
    out = Path(cfg.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    resume_from, notes = resolve_resume(out, resume)

    from qkv.tools.train.model import load_for_training

    _quiet_libraries()
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    if main:
        ckpt.write_text_atomic(out / "config.yaml", to_yaml(cfg, header=f"qkv train {out / 'config.yaml'}\n"
                                                          "resolved config of this run (written by qkv train)"))
    model, tok, info = load_for_training(cfg)
    train_ds, eval_ds, stats = build_datasets(rows, cfg.data, tok, cfg.train.seq_len, cfg.train.packing)

    metrics_path = _reset_metrics(out, resume_from, main)
    args = training_args(cfg, out, cuda, has_eval=bool(len(eval_ds)))
    trainer, metrics, stopper, loss_notes = _build_trainer(cfg, model, tok, args, train_ds, eval_ds, metrics_path,
                                                           cuda, show_progress=progress and main)
    notes += loss_notes
    if processes > 1:
        notes.append(scale_out_note(trainer, processes))
    return PreparedRun(cfg=cfg, out=out, model=model, tokenizer=tok, trainer=trainer, metrics=metrics,
                       stopper=stopper, info=info, data_stats=stats, resume_from=resume_from, notes=notes,
                       heldout_text=heldout_text(rows.eval, cfg.data), processes=processes)


def _loss_setup(cfg: TrainConfig, model, cuda: bool) -> tuple[tuple[int, str] | None, list[str]]:
    """(chunk tokens, backend) for the chunked loss or None, and what the summary should say about it. The
    model is checked here, before the first step, so an unsupported head fails at once."""
    notes: list[str] = []
    chunked = None
    if cfg.train.loss == "chunked":
        from qkv.tools.train.loss import causal_lm_parts, pick_backend

        _, head, _ = causal_lm_parts(model)
        backend = pick_backend(cfg.train.loss_backend, cuda=cuda, head_dtype=head.weight.dtype)
        chunked = (cfg.train.loss_chunk_tokens, backend)
        per = (f"{cfg.train.loss_chunk_tokens} tokens per chunk" if backend == "torch"
               else "chunking chosen by the kernel")
        notes.append(f"loss: chunked linear cross-entropy, backend {backend} ({per})")
    if cfg.train.offload_activations:
        notes.append("offload_activations: saved activations go to pinned host RAM in backward (save_on_cpu)" if cuda
                     else "offload_activations: no effect on a CPU-only run (saved tensors already live in RAM)")
    return chunked, notes


def execute(run: PreparedRun) -> TrainSummary:
    """Train (resuming when asked), then write the adapter, the summary and return it."""
    from qkv.tools.train.metrics import peak_memory
    from qkv.tools.train.summary import memory_check

    if run.resume_from is not None:
        print(f"qkv train: resuming from {run.resume_from} (step {ckpt.step_of(run.resume_from)})",
              file=sys.stderr, flush=True)
    run.stopper.install()
    t0 = time.perf_counter()
    try:
        run.trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
    finally:
        run.stopper.restore()
    wall = time.perf_counter() - t0
    state = run.trainer.state
    interrupted = run.stopper.agreed(run.trainer.args.device)  # this process's request alone without a process group
    main = run.trainer.is_world_process_zero()
    # the adapter and the summary are the run's, written once (rank 0); under DDP every rank holds the same weights
    adapter_dir = None if interrupted else (_save_weights(run) if main else run.out / _weights_name(run.cfg))
    measured, kind = peak_memory()
    latest = ckpt.latest_complete(run.out)
    summary = TrainSummary(
        output_dir=str(run.out), method=run.cfg.method.kind, model=run.cfg.model.name,
        status="interrupted" if interrupted else "finished", steps=state.global_step, max_steps=state.max_steps,
        resumed_from=str(run.resume_from) if run.resume_from else None,
        last_checkpoint=str(latest) if latest else None, params=run.info["params"],
        trainable_params=run.info["trainable_params"], train_sequences=run.data_stats["train_sequences"],
        eval_sequences=run.data_stats["eval_sequences"], tokens_seen=int(state.num_input_tokens_seen or 0),
        final_loss=run.metrics.last.get("loss"), eval_loss=run.metrics.last_eval,
        tokens_per_s=round(statistics.median(run.metrics.rates), 2) if run.metrics.rates else None,
        wall_s=round(wall, 2), adapter_dir=str(adapter_dir) if adapter_dir else None,
        memory=memory_check(run.cfg, measured, kind), processes=run.processes, rank=run.trainer.args.process_index,
        notes=run.notes)
    if main:
        ckpt.write_text_atomic(run.out / "summary.json", summary.model_dump_json(indent=2) + "\n")
    return summary


def _weights_name(cfg: TrainConfig) -> str:
    return "model" if cfg.method.kind == "full" else "adapter"


def _save_weights(run: PreparedRun) -> Path:
    """The adapter (LoRA/QLoRA) or the full model as safetensors, written to a tmp folder then renamed."""
    name = _weights_name(run.cfg)
    final = run.out / name
    tmp = run.out / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    run.model.save_pretrained(str(tmp), safe_serialization=True)
    if name == "model":
        run.tokenizer.save_pretrained(str(tmp))
    ckpt.fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return final


def train(cfg: TrainConfig, *, base_dir: Path | None = None, resume: bool = False,
          progress: bool = True) -> TrainSummary:
    """Run `cfg` to completion (or to Ctrl-C): the one function behind `qkv train`."""
    return execute(prepare(cfg, base_dir=base_dir, resume=resume, progress=progress))
