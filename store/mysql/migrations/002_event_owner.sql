-- The lease owner that wrote each event: which coordinator drove the
-- transaction at that moment (empty for older rows).
ALTER TABLE dtx_event ADD COLUMN IF NOT EXISTS owner VARBINARY(255) NOT NULL DEFAULT '';
