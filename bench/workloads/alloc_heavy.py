# CPython allocating heavily: run with PYTHONMALLOC=malloc, every object is
# a malloc and a free. argv[1] scales the work.
import sys

def build(n):
    table = {}
    for i in range(n):
        key = "k%d" % i
        table[key] = [i, str(i), (i, i + 1)]
        if i % 3 == 0:
            del table[key]
    return len(table)

def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    total = 0
    for _ in range(rounds):
        total += build(5000)
    print(total)

main()
