"""Every pooled (unpartitioned) asset downstream of the SQL models, by domain."""

study_assets: list = []
