// Thread chunks (format.h, kChunkThread) merged back into the process's
// order: each chunk is kept, decoded as far as its next event, and the
// events of all of them are delivered by sequence number as far as the
// next chunk's low_seq allows.
#include <algorithm>
#include <memory>
#include <string>

#include "format/little_endian.h"
#include "trace_reader.h"
#include "trace_reader_internal.h"

namespace pagewaste {

using namespace trace_reader_internal;

namespace {

// Implicit-id stack nodes and the End record belong to plain chunks.
bool AllowedInThreadChunk(uint8_t type, ReadResult* result) {
  if (type != static_cast<uint8_t>(RecordType::kStackNode) &&
      type != static_cast<uint8_t>(RecordType::kEnd))
    return true;
  result->message = "a plain chunk's record (type " + std::to_string(type) + ") in a thread chunk";
  return false;
}

}  // namespace

bool TraceReader::StreamLater::operator()(const std::unique_ptr<ThreadStream>& a,
                                          const std::unique_ptr<ThreadStream>& b) const {
  return a->next_seq > b->next_seq;
}

bool TraceReader::ThreadChunk(const uint8_t* payload, uint32_t size, uint64_t offset,
                              RecordVisitor* visitor, ReadResult* result) {
  auto corrupt = [&](const std::string& why) {
    result->status = TraceStatus::kCorrupt;
    result->message = why + " in the thread chunk at byte " + std::to_string(offset);
    return false;
  };
  if (result->has_end) return corrupt("data after the end record");
  uint64_t used = GetLE(payload, 4);
  uint64_t gap_bytes = GetLE(payload + 4, 4);
  if (used + gap_bytes > size - format::kThreadChunkHeader)
    return corrupt("records past the chunk's end");
  auto stream = std::make_unique<ThreadStream>();
  stream->first_seq = GetLE(payload + 8, 8);
  uint64_t low_seq = GetLE(payload + 16, 8);
  // Every event below low_seq is in the chunks read so far.
  if (!Drain(low_seq, visitor, result)) return false;
  const uint8_t* records = payload + format::kThreadChunkHeader;
  if (!wants_events_) {
    if (!ThreadChunkStructure(records, records + used, visitor, result))
      return corrupt(result->message);
    return true;
  }
  // Held until the order reaches them: bounded, so that chunks whose
  // low_seq never rises cannot hold the whole trace.
  if (pending_bytes_ + used + gap_bytes > format::kMaxPendingThreadBytes)
    return corrupt("more than " + std::to_string(format::kMaxPendingThreadBytes >> 20) +
                   " MiB of thread chunks waiting for their events' turn (a low_seq that never "
                   "rises)");
  stream->bytes.assign(records, records + used);
  stream->c = Cursor{stream->bytes.data(), stream->bytes.data() + used};
  stream->offset = offset;
  stream->gaps.assign(payload + size - gap_bytes, payload + size);
  stream->gaps_left = stream->gaps.size();
  if (!stream->NextPair()) return corrupt("a cut gap area");
  if (!Advance(stream.get(), visitor, result)) return corrupt(result->message);
  if (stream->at_event) {
    pending_bytes_ += stream->bytes.size() + stream->gaps.size();
    pending_.push_back(std::move(stream));
    std::push_heap(pending_.begin(), pending_.end(), StreamLater());
  }
  return true;
}

void TraceReader::Release() {
  const ThreadStream& done = *pending_.back();
  pending_bytes_ -= done.bytes.size() + done.gaps.size();
  pending_.pop_back();
}

bool TraceReader::ThreadChunkStructure(const uint8_t* records, const uint8_t* end, RecordVisitor* v,
                                       ReadResult* result) {
  Cursor c{records, end};
  DeltaState d;
  while (c.p < end) {
    uint8_t type = *c.p;
    if (!AllowedInThreadChunk(type, result)) return false;
    if (!DecodeRecord(&c, &d, v, result)) return false;
  }
  return true;
}

// Decodes what comes before the stream's next event (state, stack nodes,
// the Module records of a ModuleMap) and stands at that event.
bool TraceReader::Advance(ThreadStream* s, RecordVisitor* v, ReadResult* result) {
  s->at_event = false;
  while (s->c.p < s->c.end) {
    uint8_t type = *s->c.p;
    if (TakesSeq(type)) {
      if (!s->started) {
        s->next_seq = s->first_seq;
      } else if (!s->Following(s->d.seq, &s->next_seq)) {
        result->message = "a cut gap area";
        return false;
      }
      s->at_event = true;
      return true;
    }
    if (!AllowedInThreadChunk(type, result)) return false;
    if (!DecodeRecord(&s->c, &s->d, v, result)) return false;
  }
  return true;
}

bool TraceReader::Drain(uint64_t below, RecordVisitor* v, ReadResult* result) {
  while (!pending_.empty() && pending_.front()->next_seq < below) {
    ThreadStream* s = pending_.front().get();
    // The first stream goes on alone while its events come before every
    // other stream's next one (a heap's second smallest is a child of its
    // root): a thread's run of events costs no heap operation.
    uint64_t limit = below;
    for (size_t child = 1; child <= 2 && child < pending_.size(); ++child)
      limit = std::min(limit, pending_[child]->next_seq);
    do {
      s->d.seq = s->next_seq;
      s->started = true;
      if (!DecodeRecord(&s->c, &s->d, v, result) || !Advance(s, v, result)) {
        result->status = TraceStatus::kCorrupt;
        result->message += " in the thread chunk at byte " + std::to_string(s->offset);
        return false;
      }
    } while (s->at_event && s->next_seq < limit);
    std::pop_heap(pending_.begin(), pending_.end(), StreamLater());
    if (s->at_event)
      std::push_heap(pending_.begin(), pending_.end(), StreamLater());
    else
      Release();  // all of it delivered
  }
  return true;
}

}  // namespace pagewaste
