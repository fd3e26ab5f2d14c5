module github.com/multitenant/mtm/migrations

go 1.26.8
