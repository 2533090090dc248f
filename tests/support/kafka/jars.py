"""The Apache Kafka broker's jars, fetched once from Maven Central by ``mvn`` and cached.

``ensure_kafka_jars()`` returns a folder of jars to put on a JVM classpath
(``java -cp 'DIR/*' kafka.Kafka …``). The first call runs::

    mvn -q -B -f tests/support/kafka/pom.xml dependency:copy-dependencies \
        -DincludeScope=runtime -Dkafka.version=VERSION -DoutputDirectory=TMP

into a temporary sibling folder and renames it into place, so the cache folder
exists only when complete. Later calls (any process) find the folder and never
start Maven. A lock file serialises the first fetch between parallel test
processes. Maven itself caches the downloads in ``~/.m2``.

Environment:
    AGENTLOG_KAFKA_VERSION: the ``kafka_2.13`` version to fetch (default
        :data:`KAFKA_VERSION`; 4.x only: the broker is run in KRaft mode).
    AGENTLOG_KAFKA_JARS_DIR: use this folder instead of
        ``$XDG_CACHE_HOME/agentlog/kafka-VERSION/libs``. If it already holds a
        ``kafka_2.13-*.jar`` (for example the ``libs/`` of an unpacked Kafka
        distribution) it is used as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from agentlog.errors import AgentlogError

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.2"
"""The Kafka release the tests run: the 4.1 line of compose.yaml, latest patch."""

POM = Path(__file__).with_name("pom.xml")
_FETCH_TIMEOUT = 900.0
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
# A failed fetch is not retried within one process: every fixture that asks
# gets the same error at once instead of another Maven run.
_failures: dict[Path, KafkaJarsUnavailable] = {}


class KafkaUnavailable(AgentlogError):
    """Apache Kafka cannot be run on this machine (no Java, no Maven, no jars).

    Test fixtures skip on this error; any other error starting a broker is a failure.
    """


class KafkaJarsUnavailable(KafkaUnavailable):
    """Maven could not provide the broker's jars.

    Attributes:
        command: the command that failed.
        output: Maven's complete output, for the log.
    """

    def __init__(self, message: str, command: list[str] | None = None, output: str = "") -> None:
        self.command = command or []
        self.output = output
        super().__init__(message)


def kafka_version() -> str:
    """The Kafka version to run: ``$AGENTLOG_KAFKA_VERSION`` or :data:`KAFKA_VERSION`."""
    return os.environ.get("AGENTLOG_KAFKA_VERSION") or KAFKA_VERSION


def jars_dir(version: str | None = None) -> Path:
    """Where the jars of ``version`` are (or will be) cached."""
    override = os.environ.get("AGENTLOG_KAFKA_JARS_DIR")
    if override:
        return Path(override).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "agentlog" / f"kafka-{version or kafka_version()}" / "libs"


def find_java() -> str:
    """The ``java`` executable: ``$JAVA_HOME/bin/java``, else the one on PATH.

    Raises:
        KafkaUnavailable: there is no Java runtime.
    """
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (candidate := Path(java_home) / "bin" / "java").is_file():
        return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise KafkaUnavailable(
            "java not found (JAVA_HOME unset and no java on PATH): install a Java 17+ runtime"
        )
    return java


def ensure_kafka_jars(version: str | None = None, *, timeout: float = _FETCH_TIMEOUT) -> Path:
    """Return the folder holding the broker's jars, fetching them with Maven the first time.

    Safe to call from parallel processes: one fetches, the others wait for it.

    Args:
        version: ``kafka_2.13`` version; default :func:`kafka_version`.
        timeout: seconds allowed for waiting on the lock plus running Maven.

    Returns:
        The folder; put ``folder/*`` on the classpath.

    Raises:
        KafkaJarsUnavailable: Maven is missing, failed (the message quotes its
            error) or took longer than ``timeout``.
    """
    version = version or kafka_version()
    target = jars_dir(version)
    if _complete(target):
        return target
    if (failure := _failures.get(target)) is not None:
        raise failure
    deadline = time.monotonic() + timeout
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(target.parent / f".{target.name}.lock", deadline):
            if not _complete(target):  # else fetched by another process while we waited
                _fetch(version, target, deadline)
    except KafkaJarsUnavailable as e:
        _failures[target] = e
        raise
    return target


def _complete(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("kafka_2.13-*.jar"))


@contextlib.contextmanager
def _locked(path: Path, deadline: float) -> Iterator[None]:
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise KafkaJarsUnavailable(
                        f"timed out waiting for {path}: another process is still fetching "
                        "the Kafka jars with Maven"
                    ) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch(version: str, target: Path, deadline: float) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaJarsUnavailable(
            "mvn not found on PATH: install Maven 3 to fetch the Kafka jars from Maven Central, "
            "or set AGENTLOG_KAFKA_JARS_DIR to a folder of Kafka jars"
        )
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    command = [
        mvn,
        "-q",
        "-B",
        "-U",  # retry artifacts whose earlier download failed (Maven caches failures)
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-Dkafka.version={version}",
        f"-DoutputDirectory={partial}",
    ]
    logger.info("fetching Kafka %s jars with Maven into %s", version, target)
    started = time.monotonic()
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=max(1.0, deadline - started),
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise KafkaJarsUnavailable(
            f"Maven did not finish fetching the Kafka {version} jars within "
            f"{e.timeout:.0f} s: {' '.join(command)}",
            command,
            _text(e.stdout) + _text(e.stderr),
        ) from e
    output = _ANSI_RE.sub("", result.stdout + result.stderr)
    if result.returncode != 0 or not _complete(partial):
        shutil.rmtree(partial, ignore_errors=True)
        raise KafkaJarsUnavailable(
            f"Maven could not fetch the Kafka {version} jars (exit {result.returncode}): "
            f"{_first_error(output)}",
            command,
            output,
        )
    if target.is_dir():  # an empty or partial AGENTLOG_KAFKA_JARS_DIR
        shutil.rmtree(target)
    partial.rename(target)
    logger.info("fetched Kafka %s jars in %.1f s", version, time.monotonic() - started)


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    chosen = errors[0] if errors else (lines[-1] if lines else "no output")
    return chosen.removeprefix("[ERROR]").strip()


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
