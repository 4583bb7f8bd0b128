"""``python -m speechlm.cli`` — the same as the ``speechlm`` console script."""

from speechlm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
