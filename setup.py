"""Build hook for the C extensions: shm._native (atomics, table, rings),
shm._limiter (the shared rate limiter) and hyperlinkr._wire (request heads
and click records, the common case)."""

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
        Extension(
            "hyperlinkr._wire",
            sources=["hyperlinkr/_wire.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"],
        ),
    ]
)
