module github.com/multitenant/mtm/client

go 1.26.8
