"""Run every fuzz target with atheris for a bounded time, and report what each run did.

Usage: ``python fuzz/run.py [--seconds N] [--target NAME ...]`` (``make fuzz`` runs it with
``FUZZ_SECONDS``, 60 by default). Each target runs on a temporary copy of its seed corpus,
``fuzz/corpus/<target>/`` and the inputs of ``fuzz/findings/<target>/``, with the dictionary
``fuzz/dicts/<target>.dict``, so runs never grow the repository (``--keep DIR`` saves the
grown corpus to ``DIR/<target>/``). Crash, timeout and out-of-memory inputs land in
``fuzz/artifacts/<target>/`` (ignored by git), with the full log, and
``fuzz/artifacts/summary.json`` keeps the figures. Replay an input with
``python fuzz/fuzz_<target>.py FILE``. The exit status is 1 when any target found something.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

FUZZ = pathlib.Path(__file__).resolve().parent
TARGETS = ("frames", "frames_deflate", "handshake", "uri", "rpc")
# libFuzzer dictionaries in fuzz/dicts/: tokens the mutations splice in.
DICTS = {target: f"{target.partition('_')[0]}.dict" for target in TARGETS}
ARTIFACT_KINDS = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")

# libFuzzer's status lines: "#1234	NEW    cov: 56 ft: 78 corp: 9/1234b ... exec/s: 10 rss: 60Mb".
_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\d+\w*)")
_DONE = re.compile(r"^Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")


def parse_log(log: str) -> dict[str, object]:
    """Executions, coverage and corpus size from a libFuzzer log."""
    result: dict[str, object] = {}
    first = last = None
    for line in log.splitlines():
        status = _STATUS.match(line)
        if status:
            last = status
            if first is None and status.group(2) in ("INITED", "NEW"):
                first = status
        done = _DONE.match(line)
        if done:
            result["executions"] = int(done.group(1))
        stat = _STAT.match(line)
        if stat:
            result[stat.group(1)] = int(stat.group(2))
    if last is not None:
        result["executions"] = result.get("executions", int(last.group(1)))
        result["cov"] = int(last.group(3))
        result["ft"] = int(last.group(4))
        result["corpus"] = int(last.group(5))
    if first is not None:
        result["cov_initial"] = int(first.group(3))
    return result


def run_target(target: str, seconds: int, args: argparse.Namespace) -> dict[str, object]:
    artifacts = FUZZ / "artifacts" / target
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    with tempfile.TemporaryDirectory(prefix=f"socketeer-fuzz-{target}-") as tmp:
        corpus = pathlib.Path(tmp) / "corpus"
        shutil.copytree(FUZZ / "corpus" / target, corpus)
        # Inputs of known bugs seed the run too: stepped over, unless SOCKETEER_FUZZ_STRICT=1.
        known = FUZZ / "findings" / target
        if known.is_dir():
            shutil.copytree(known, corpus, dirs_exist_ok=True)
        seeds = len(list(corpus.iterdir()))
        command = [
            sys.executable,
            str(FUZZ / f"fuzz_{target}.py"),
            str(corpus),
            f"-max_total_time={seconds}",
            f"-rss_limit_mb={args.rss_limit_mb}",
            f"-timeout={args.timeout}",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
            f"-dict={FUZZ / 'dicts' / DICTS[target]}",
            *args.libfuzzer,
        ]
        print(f"== {target}: {seconds} s, {seeds} seeds", flush=True)
        started = time.monotonic()
        process = subprocess.run(
            command, cwd=FUZZ.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        elapsed = time.monotonic() - started
        end_corpus = len(list(corpus.iterdir()))
        if args.keep is not None:
            kept = args.keep / target
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(corpus, kept)
    (artifacts / "log.txt").write_text(process.stdout)
    findings = sorted(
        str(path.relative_to(FUZZ.parent))
        for path in set(artifacts.iterdir()) - before
        if path.name.startswith(ARTIFACT_KINDS)
    )
    result: dict[str, object] = {
        "target": target,
        "seconds": round(elapsed),
        "exit_code": process.returncode,
        "seeds": seeds,
        "corpus_end": end_corpus,
        "findings": findings,
        **parse_log(process.stdout),
    }
    if process.returncode != 0 and not findings:
        result["findings"] = [f"exit code {process.returncode}: see {artifacts}/log.txt"]
    return result


def report(result: dict[str, object]) -> str:
    executions = int(str(result.get("executions", 0)))
    rate = executions / max(int(str(result["seconds"])), 1)
    findings = list(result["findings"] or ["none"])  # type: ignore[call-overload]
    return (
        f"   {executions} executions ({rate:.0f}/s), coverage {result.get('cov_initial', '?')}"
        f" -> {result.get('cov', '?')} edges, {result.get('ft', '?')} features, corpus"
        f" {result['seeds']} -> {result['corpus_end']} inputs, peak RSS"
        f" {result.get('peak_rss_mb', '?')} MB\n   findings: {', '.join(map(str, findings))}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="time per target")
    parser.add_argument("--target", action="append", choices=TARGETS, help="default: all")
    parser.add_argument("--rss-limit-mb", type=int, default=1024)
    parser.add_argument("--timeout", type=int, default=10, help="seconds per input")
    parser.add_argument("--keep", type=pathlib.Path, help="save the grown corpora here")
    parser.add_argument(
        "libfuzzer", nargs="*", help="more libFuzzer options, after --, e.g. -- -max_len=8192"
    )
    args = parser.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install atheris (Linux x86_64 wheels)")
        return 2
    results = []
    for target in args.target or TARGETS:
        result = run_target(target, args.seconds, args)
        print(report(result), flush=True)
        results.append(result)
    summary = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "results": results,
    }
    (FUZZ / "artifacts" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if any(result["findings"] for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
