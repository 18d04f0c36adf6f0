"""Build hook for the C extensions: shm._native (atomics, table, rings) and
shm._limiter (the shared rate limiter)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shm._native",
            sources=["shm/_native.c"],
            depends=["shm/_hash.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
        ),
        Extension(
            "shm._limiter",
            sources=["shm/_limiter.c"],
            depends=["shm/_hash.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
        ),
    ]
)
