"""Simulating: synthetic council data drawn from an explicit model whose truth is written down."""
