"""SCBDA: supply-chain big-data analytics as a Dagster asset graph (the Dagster code location)."""

import os

# pyarrow 25 can crash the process when it is first loaded on a thread that exits and another thread allocates
# later (apache/arrow#50471); Streamlit script threads and Dagster's sensor thread pools do exactly that. The
# system allocator avoids it. Set before anything imports pyarrow.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
