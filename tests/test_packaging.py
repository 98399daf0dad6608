"""d2m as a user installs it: the wheel, in a fresh virtual environment outside the source tree.

The wheel is built offline from a copy of the sources (``pip wheel --no-deps
--no-build-isolation``, with this environment's setuptools), installed with
``--no-deps`` into a new virtual environment that borrows this environment's
third-party packages (a ``.pth`` line to its site-packages; no network), and
its ``d2m serve --config`` must answer the web page from the installed
package data.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import site
import subprocess
import sys
import threading
import time
import venv
import zipfile
from pathlib import Path

import pytest

from d2m_server.config import load_toml_text
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[1]
#: What the wheel is built from (all that pyproject.toml's package-dir names, and README.md).
SOURCES = ("pyproject.toml", "README.md", "d2m", "server", "clients", "docs")


def _packages_in_tree() -> set[str]:
    found = set()
    for root, prefix in ((REPO / "d2m", "d2m"), (REPO / "server" / "d2m_server", "d2m_server")):
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            found.add(".".join((prefix, *rel.parts)))
    return found


def test_every_package_of_the_tree_is_listed_in_pyproject():
    listed = set(load_toml_text((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    missing = sorted(_packages_in_tree() - listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_the_all_extra_names_every_optional_extra_a_show_uses():
    extras = load_toml_text((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (all_spec,) = extras["all"]
    inside = set(all_spec.split("[", 1)[1].rstrip("]").split(","))
    assert {"camera", "musicgen", "mqtt", "plot"} <= inside
    assert inside <= set(extras), f"`all` names extras that do not exist: {inside - set(extras)}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed (it is in the test extra)")
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the build is quiet: no deprecation warnings from setuptools
    assert "Warning" not in proc.stderr and "deprecated" not in proc.stderr, proc.stderr
    (whl,) = out.glob("d2m-*.whl")
    return whl


def test_the_wheel_carries_the_page_the_kits_and_the_docs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for page in ("index.html", "app.js", "worklet.js", "style.css"):
        assert f"d2m_server/clients/web/{page}" in names
    for kit in (REPO / "clients" / "touchdesigner").iterdir():
        if kit.suffix in (".py", ".md", ".tox"):
            assert f"d2m_server/clients/touchdesigner/{kit.name}" in names, kit.name
    for kit in (REPO / "clients" / "unity").iterdir():
        if kit.suffix in (".cs", ".md"):
            assert f"d2m_server/clients/unity/{kit.name}" in names, kit.name
    for doc in (REPO / "docs").glob("*.md"):
        assert f"d2m_server/docs/{doc.name}" in names, doc.name
    for module in (REPO / "server" / "d2m_server").rglob("*.py"):
        assert f"d2m_server/{module.relative_to(REPO / 'server' / 'd2m_server').as_posix()}" in names
    for module in (REPO / "d2m").rglob("*.py"):
        assert f"d2m/{module.relative_to(REPO / 'd2m').as_posix()}" in names
    assert not any(n.startswith(("tests/", "benchmarks/", "clients/")) for n in names)


async def _http_get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.slow
def test_the_installed_wheel_serves_the_page_from_a_fresh_environment(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # this environment's third-party packages (numpy, websockets, ...) without its d2m:
    # a site-packages named in a .pth file is put on sys.path, but its own .pth files (the
    # editable install's finder) are not run
    Path(purelib, "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, capture_output=True, timeout=300)
    run_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "D2M_WEB_ROOT")}
    run_env["PYTHONUNBUFFERED"] = "1"
    where = subprocess.run([str(py), "-c", "import d2m, d2m_server.web as w; "
                                           "print(d2m.__file__); print(w.DEFAULT_WEB_ROOT)"],
                           capture_output=True, text=True, cwd=tmp_path, env=run_env, check=True)
    d2m_file, web_root = where.stdout.split()
    assert d2m_file.startswith(str(env_dir)) and web_root.startswith(str(env_dir)), where.stdout
    # the installed command, started with a show file
    port = free_port()
    show = tmp_path / "show.toml"
    show.write_text(f'ws = "127.0.0.1:{port}"\nno_osc = true\naudio_out = "none"\nduration = 60\n')
    proc = subprocess.Popen([str(env_dir / "bin" / "d2m"), "serve", "--config", str(show)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp_path, env=run_env)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            lines.append(line)
            if "d2m is live" in line or time.monotonic() > deadline:
                break
        threading.Thread(target=lambda: [lines.append(x) for x in proc.stdout], daemon=True).start()
        assert any("d2m is live" in x for x in lines), "".join(lines)

        async def fetch():
            return [await _http_get(port, path) for path in ("/", "/app.js", "/style.css")]

        pages = asyncio.run(fetch())
    finally:
        proc.kill()
        proc.wait(timeout=10)
    for (status, body), name in zip(pages, ("index.html", "app.js", "style.css")):
        assert status == 200, (name, body[:200])
        assert body == (REPO / "clients" / "web" / name).read_bytes(), name
    assert f"web page http://127.0.0.1:{port}/" in "".join(lines)
    # `d2m config` of the installed wheel reads the same file back
    dump = subprocess.run([str(env_dir / "bin" / "d2m"), "config", "--config", str(show)],
                          capture_output=True, text=True, cwd=tmp_path, env=run_env, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert f'ws = "127.0.0.1:{port}"' in dump.stdout and 'audio_out = "none"' in dump.stdout
    assert json.dumps("none") in dump.stdout
