module github.com/multitenant/mtm/projections

go 1.26.8

replace github.com/multitenant/mtm/events => ../events

replace github.com/multitenant/mtm/migrations => ../migrations

replace github.com/multitenant/mtm/platform => ../platform

require github.com/jackc/pgx/v5 v5.12.0

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/text v0.44.0 // indirect
)
