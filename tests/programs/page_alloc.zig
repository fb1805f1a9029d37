// 1000 two-byte allocations from Zig's std.heap.page_allocator, then 1000
// frees: one mapping and one unmapping each. Built twice by the tests: with
// Zig's defaults (static, no libc: the ptrace backend records it) and with
// -lc (dynamic: the preload shim records it).
const std = @import("std");

pub fn main() !void {
    const allocator = std.heap.page_allocator;
    var blocks: [1000][]u8 = undefined;
    for (&blocks) |*block| {
        block.* = try allocator.alloc(u8, 2); // SITE: alloc
        block.*[0] = 1;
    }
    for (blocks) |block| {
        allocator.free(block); // SITE: free
    }
}
