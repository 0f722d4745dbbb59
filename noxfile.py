"""nox sessions (``nox -l`` lists them): ``lint`` and ``tests`` by default (what CI runs),
``plugins``, ``bench`` (the speed-ratio gate; see .github/workflows/ci.yml)."""

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (what CI runs)."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks and example plugins."""
    session.install("ruff")
    session.run("ruff", "check", "sslbench", "tests", "benchmarks", "plugins", "noxfile.py",
                *session.posargs)


@nox.session
def plugins(session: nox.Session) -> None:
    """The example plugin distributions' own tests, each installed as a user would."""
    session.install("-e", ".[dev]")
    for name in ("sslbench-dcl", "sslbench-npz"):
        session.install(f"./plugins/{name}")
        session.run("pytest", "-q", f"plugins/{name}/tests", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Speed suite, CLI start-up and online-monitoring benchmarks, then the ratio check
    against baseline.json.

    ``SSLBENCH_BENCH_PRESET`` picks the sizes (cpu: default, a few minutes; smoke; gpu), other
    ``SSLBENCH_BENCH_*`` variables override one size each (see benchmarks/harness.py). Extra
    arguments go to the comparison, e.g. ``nox -s bench -- --tolerance 0.4``.
    """
    session.install("-e", ".[dev]")
    preset = os.environ.get("SSLBENCH_BENCH_PRESET", "cpu")
    os.makedirs(".benchmarks", exist_ok=True)  # git-ignored
    out = f".benchmarks/speed-{preset}.json"
    session.run("pytest", "-q", "-p", "no:cacheprovider", "benchmarks/test_speed.py",
                "benchmarks/test_cli_startup.py", "benchmarks/test_online.py",
                f"--benchmark-json={out}",
                env={"SSLBENCH_BENCH_PRESET": preset})
    session.run("python", "-m", "benchmarks.compare", out, "--preset", preset, *session.posargs)
