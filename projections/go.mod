module github.com/multitenant/mtm/projections

go 1.26.8

replace github.com/multitenant/mtm/events => ../events

replace github.com/multitenant/mtm/migrations => ../migrations

replace github.com/multitenant/mtm/platform => ../platform
