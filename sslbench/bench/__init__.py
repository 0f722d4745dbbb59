"""Orchestration: one run (pretrain -> evaluate -> record), matrices, tables and plots."""
