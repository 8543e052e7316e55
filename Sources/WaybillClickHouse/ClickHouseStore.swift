// The ClickHouse engine (issue 12): the storage protocols of WaybillStore over ClickHouse's HTTP interface.
