"""``python -m sslbench`` (also what ``torchrun -m sslbench`` runs)."""

from sslbench.cli import main

if __name__ == "__main__":
    main()
