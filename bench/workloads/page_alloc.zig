// The seed's case at scale: argv[1] one-page allocations from Zig's
// std.heap.page_allocator, each freed at once (a mapping and an unmapping
// each). Built with Zig's defaults: static, no libc.
const std = @import("std");

pub fn main() !void {
    const allocator = std.heap.page_allocator;
    var args = std.process.args();
    _ = args.skip();
    const count = if (args.next()) |arg| try std.fmt.parseInt(usize, arg, 10) else 50000;
    var i: usize = 0;
    while (i < count) : (i += 1) {
        const block = try allocator.alloc(u8, 4096);
        block[0] = 1;
        allocator.free(block);
    }
}
