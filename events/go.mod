module github.com/multitenant/mtm/events

go 1.26.8
