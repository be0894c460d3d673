#!/usr/bin/env python3
"""wavepipe: build, validate, run locally and deploy the SageMaker pipeline. See README.md."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(embedded_default=True))
