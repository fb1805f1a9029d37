module pagewaste/go_alloc

go 1.19
