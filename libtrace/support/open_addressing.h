// Deletion from an open-addressed hash table with linear probing, without
// tombstones: the entries after the removed one in its run move back into
// the hole where their home slot allows. Shared by the shim's set of sampled
// blocks (fixed memory, no allocation) and the replay's live set.
#pragma once

#include <cstddef>

namespace pagewaste {

// Empties slot `hole` of a table of mask + 1 slots (a power of two).
// used(i): whether slot i holds an entry; home(i): the home slot of the
// entry at i; move(from, to): moves an entry; clear(i): empties slot i.
template <typename Used, typename Home, typename Move, typename Clear>
void EraseFromRun(size_t hole, size_t mask, Used used, Home home, Move move, Clear clear) {
  for (size_t i = (hole + 1) & mask; used(i); i = (i + 1) & mask) {
    size_t h = home(i);
    // The entry may fill the hole if the hole lies on its probe path, from
    // its home slot to i (which may wrap around the end of the table).
    bool on_path = hole <= i ? (h <= hole || h > i) : (h <= hole && h > i);
    if (on_path) {
      move(i, hole);
      hole = i;
    }
  }
  clear(hole);
}

}  // namespace pagewaste
