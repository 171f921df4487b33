"""The README works as written (issue 14 item 8): its commands, copied in order, run from a fresh copy.

The slow test copies the repository's tracked files into a fresh temporary directory (a fresh clone, with
this checkout's edits), then runs every command of the README's ``bash`` blocks and every ``python`` block
in the order they appear, in one shell (so ``export`` carries over, as in a terminal). Exactly two kinds
of command are not run, because the environment under test already did them: ``pip install ...`` (the
package is installed; reinstalling ``-e .`` from the copy would repoint this environment at a temporary
folder) and ``pytest`` (this suite). Option values are made smaller only where a documented flag allows
it (:data:`SMALLER`); nothing else is changed. It then checks what the commands wrote, and the output of
``neurofit demo`` with ``tests/test_scoring_demo.py``'s checks (that module runs the demo itself only where
this test cannot run). The fast tests check the parsing and that the README's commands name only things that
exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")

#: (documented flag with the README's value, the smaller value the slow test uses)
SMALLER = [("--epochs 5", "--epochs 1")]
#: commands the environment under test has already run (see the module docstring)
NOT_RUN = (re.compile(r"^pip install\b"), re.compile(r"^(python -m )?pytest\b"))


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block of ``text``, in order.

    >>> readme_blocks("a\\n```bash\\nls\\n```\\n```python\\nx = 1\\n```\\n")
    [('bash', 'ls\\n'), ('python', 'x = 1\\n')]
    """
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def shell_commands(body: str) -> list[str]:
    """The commands of a bash block: continuation lines joined, ``&&`` chains split, comments dropped.

    >>> shell_commands("a --x 1 \\\\\\n    --y 2   # note\\n\\n# only a comment\\npip install . && b\\n")
    ['a --x 1 --y 2', 'pip install .', 'b']
    """
    joined = re.sub(r"\\\n\s*", "", body)
    out = []
    for line in joined.splitlines():
        command = _strip_comment(line).strip()
        out.extend(part.strip() for part in command.split(" && ") if part.strip())
    return out


def _strip_comment(line: str) -> str:
    """``line`` without a trailing ``# comment`` (a ``#`` outside quotes that starts a word)."""
    quote = None
    for i, ch in enumerate(line):
        if ch in "'\"" and quote in (None, ch):
            quote = None if quote == ch else ch
        elif ch == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_script(text: str) -> str:
    """One bash script that runs the README's commands in order (python blocks through ``python -``)."""
    lines = ["set -eo pipefail", "trap 'echo \"README command failed: $BASH_COMMAND\" >&2' ERR"]
    for n, (language, body) in enumerate(readme_blocks(text)):
        if language == "bash":
            for command in shell_commands(body):
                if any(p.search(command) for p in NOT_RUN):
                    continue
                for old, new in SMALLER:
                    command = command.replace(old, new)
                lines += [f"echo {shlex.quote('$ ' + command)}", command]
        elif language == "python":
            lines += [f"echo '>>> python block {n}'", f"python - <<'NEUROFIT_README_{n}'", body.rstrip(),
                      f"NEUROFIT_README_{n}"]
    return "\n".join(lines) + "\n"


def test_blocks_and_commands_are_parsed_in_order():
    text = README.read_text()
    blocks = readme_blocks(text)
    assert [lang for lang, _ in blocks].count("bash") >= 4 and any(lang == "python" for lang, _ in blocks)
    script = readme_script(text)
    assert "neurofit demo" in script and "pip install" not in script and "pytest" not in script
    assert script.index("neurofit score --model neurofit/checkpoints/cornet_z") < script.index("neurofit compare")


def test_every_readme_command_is_a_neurofit_command_the_cli_knows():
    """A misspelt subcommand fails here in seconds, not at the end of the slow test."""
    from neurofit.cli import build_parser

    parser = build_parser()
    for language, body in readme_blocks(README.read_text()):
        if language != "bash":
            continue
        for command in shell_commands(body):
            words = shlex.split(command)
            if words[0] != "neurofit":
                continue
            expanded = [w.replace("$NEUROFIT_DATA_PATH", "/data") for w in words[1:]]
            try:
                parser.parse_args(expanded)
            except SystemExit as err:  # argparse exits 2 on an unknown command or flag
                pytest.fail(f"README command does not parse: {command} (exit {err.code})")


def test_readme_paths_into_the_repository_exist():
    text = README.read_text()
    pattern = r"(?<![/\w.])(neurofit/checkpoints/\w+\.safetensors|docs/\w+\.md|reports/demo[\w/.]*)"
    for path in set(re.findall(pattern, text)):
        assert (ROOT / path.rstrip(".")).exists(), path


def _fresh_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (MIRROR / "cifar10_resnet/resnet20-12fca82f.th").is_file(),
                    reason="real-data mirror absent (set NEUROFIT_DATA_PATH): the README's last score needs it")
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_readme_commands_run_in_order_from_a_fresh_copy(tmp_path):
    work = tmp_path / "neurofit"
    _fresh_copy(work)
    script = readme_script(README.read_text())
    (tmp_path / "readme.sh").write_text(script)
    env = {**os.environ, "NEUROFIT_DATA_PATH": str(MIRROR.resolve()), "NEUROFIT_HOME": str(tmp_path / "home"),
           "MPLBACKEND": "Agg", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(tmp_path / "readme.sh")], cwd=work, env=env, capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\n--- stdout ---\n{proc.stdout[-3000:]}"
    # what the README says its commands write
    for path in ("neurofit-demo", "out/cornet_z-it.nc", "out/bl-it.nc", "out/compare-it.nc", "out/report/index.html",
                 "out/bl-it.csv", "out/resnet20-cowley.nc", "out/synthetic-ventral.nc", "out/blt.safetensors"):
        assert (work / path).exists(), path
    assert "skipped" in proc.stdout + proc.stderr  # `report out/*.nc` notes the comparison file it skips
    # the demo, the README's first command, keeps its promises (tests/test_scoring_demo.py runs it only
    # where this test cannot run)
    from test_scoring_demo import check_demo_output

    demo_text = proc.stdout.split("$ neurofit demo\n", 1)[1].split("\n$ ", 1)[0]
    check_demo_output(demo_text, work / "neurofit-demo")
