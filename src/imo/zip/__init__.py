"""`imo zip`: a lossless compressor driven by a language model (see imo.zip.codec)."""
