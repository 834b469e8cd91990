"""Packaging for fartrack (``pip install -e .``).

Runtime requirements are read from requirements.txt. Its exact torch / torchvision pins describe the
tested environment; as package metadata they are relaxed to lower bounds, so installing fartrack never
replaces a torch build (CUDA, ROCm, CPU) that is already installed.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent

# Lower bounds used instead of the exact pins for packages whose builds are platform specific.
RELAXED = {"torch": "torch>=2.1", "torchvision": "torchvision>=0.16"}


def read_requirements(name: str) -> list:
    """Requirement lines of ``name`` without comments, options and blank lines; torch pins relaxed."""
    requirements = []
    for line in (HERE / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        project = line.split(";", 1)[0]
        for sep in ("==", ">=", "<=", "~=", "!=", "<", ">", "["):
            project = project.split(sep, 1)[0]
        requirements.append(RELAXED.get(project.strip().lower(), line))
    return requirements


setup(
    name="fartrack",
    version="0.1.0",
    description="FARTrack (ICLR 2026): fast autoregressive visual tracking -- training, evaluation, deployment",
    packages=find_packages(include=["fartrack", "fartrack.*"]),
    python_requires=">=3.10",
    install_requires=read_requirements("requirements.txt"),
    extras_require={"test": read_requirements("requirements-test.txt")},
    license="Apache-2.0",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
