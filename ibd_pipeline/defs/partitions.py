"""Centers as static partitions: one partition per profile under centers/."""

import dagster as dg

from ..config import center_ids

center_partitions = dg.StaticPartitionsDefinition(center_ids())
