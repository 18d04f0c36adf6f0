"""Build hook for the one C extension: shm._native (atomics, table, rings)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shm._native",
            sources=["shm/_native.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
        )
    ]
)
