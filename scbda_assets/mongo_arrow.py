"""MongoDB query results as Arrow tables, streamed (pymongoarrow): the archive's reader and the history layer's hot
reads share it."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

# Raw BSON per Arrow chunk: the run's memory stays bounded however many documents an hour holds (100x rate: ~2 GB).
CHUNK_BYTES = 64 * 2**20


def arrow_chunks(collection, query: dict, schema, chunk_bytes: int = CHUNK_BYTES) -> Iterator[pa.Table]:
    """``find_arrow_all``, streamed: a new Arrow table every ``chunk_bytes`` of raw BSON batches."""
    from pymongoarrow.context import PyMongoArrowContext

    projection = {name: True for name in schema}
    context, pending = None, 0
    for batch in collection.find_raw_batches(query, projection=projection):
        if context is None:
            context = PyMongoArrowContext(schema, codec_options=collection.codec_options)
        context.process_bson_stream(batch)
        pending += len(batch)
        if pending >= chunk_bytes:
            yield context.finish()
            context, pending = None, 0
    if context is not None:
        yield context.finish()
