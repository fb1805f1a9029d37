module pagewaste/go_maps

go 1.19
