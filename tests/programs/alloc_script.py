# A Python workload for the symbolization check: builds and drops lists.
data = []
for i in range(2000):
    data.append([i] * 50)
print(len(data))
