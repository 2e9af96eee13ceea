"""Stage download: fetch the configured data source into data/raw (files + manifest.csv)."""

import argparse
from pathlib import Path

from xtalml.config import load_params, section
from xtalml.sources.download import download_source

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--out", default="data/raw")
args = parser.parse_args()

manifest = download_source(section(load_params(args.params), "data", ["name"]), Path(args.out))
print(f"download: {len(manifest)} files from {section(load_params(args.params), 'data')['name']} into {args.out}")
