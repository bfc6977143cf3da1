"""The ``microexpr`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import sys

__all__ = ["main"]

USAGE = """usage: microexpr COMMAND [ARGS]

commands:
  evaluate TRUTH PRED [--json OUT]   score spotted events with the MEGC rule
  info                               core version, SIMD, C ABI location, face model
  -h, --help                         this message

Run `microexpr COMMAND --help` for a command's options."""


def _info() -> int:
    import microexpr
    from microexpr import _core
    from microexpr.errors import ModelNotFoundError
    from microexpr.landmarks import find_face_model

    include_dir, lib_dir = microexpr.c_abi_paths()
    print(f"microexpr {microexpr.__version__} (core {_core.__version__}, SIMD {_core.simd})")
    print(f"C ABI header:  {include_dir / 'microexpr.h'}")
    print(f"C ABI library: {lib_dir}")
    try:
        print(f"face model:    {find_face_model()}")
    except ModelNotFoundError as error:
        print(f"face model:    not found\n{error}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "evaluate":
        from microexpr.cli_evaluate import main as evaluate_main

        return evaluate_main(rest)
    if command == "info":
        return _info()
    print(f"microexpr: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
