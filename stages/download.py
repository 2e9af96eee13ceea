"""Stage download@<source>: fetch one configured source (a key of `sources`) into its raw folder (files + manifest.csv)."""

import argparse
from pathlib import Path

from xtalml.config import load_params, source_section
from xtalml.sources.download import download_source

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--params", default="params.yaml")
parser.add_argument("--source", required=True, help="a key of the `sources` section of params.yaml")
parser.add_argument("--out", required=True)
args = parser.parse_args()

source = source_section(load_params(args.params), args.source)
manifest = download_source(source, Path(args.out))
print(f"download@{args.source}: {len(manifest)} files from {source['name']} into {args.out}")
