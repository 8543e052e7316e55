import WaybillModel

extension EventWriteSession {
    /// Retention, in one transaction: deletes the events before `cutoff` with their hashes and subject
    /// lists (a block that also holds later events is rewritten without them, under the same seq), the
    /// spans that start before it, and the orders last active before it (taken out of the rollups
    /// first). Link groups stay. Returns how many events were deleted.
    func deleteBefore(_ cutoff: Micros) throws -> Int {
        blocks.forgetCachedKeys()
        let deleted = try conn.transaction {
            try window?.fold()  // the retractions below start from the rollups of every committed write
            try dedup.deleteHashes(ofBlocksBefore: cutoff)
            let old = try conn.prepare("SELECT seq, body, skip FROM event_blocks WHERE tmin < ?")
            old.bind(1, cutoff)
            var gone: [(seq: Int64, subjects: [String], kept: [CloudEvent]?, removed: Int)] = []
            while try old.step() {
                let seq = old.int64(0)
                let all = try EventBlockTable.decode(old.blob(1), skip: old.isNull(2) ? nil : old.blob(2), seq: seq,
                                                     dictionary: blocks.dictionary, conn).map(\.event)
                let kept = all.filter { $0.time >= cutoff }
                // The subjects that no longer have an event in the block lose their key row.
                let keptSubjects = Set(kept.map(\.subject))
                gone.append((seq, EventBlocks.subjects(all).filter { !keptSubjects.contains($0) }, kept.isEmpty ? nil : kept, all.count - kept.count))
            }
            old.reset()
            let delBlock = try conn.prepare("DELETE FROM event_blocks WHERE seq = ?")
            let update = try conn.prepare("UPDATE event_blocks SET tmin = ?, tmax = ?, n = ?, body = ?, skip = NULL WHERE seq = ?")
            var n = 0
            var lost: [String: Set<Int64>] = [:]
            for g in gone { for subject in g.subjects { lost[subject, default: []].insert(g.seq) } }
            for (subject, seqs) in lost { try SubjectBlocks.remove(seqs, from: subject, conn) }
            for g in gone {
                if let kept = g.kept {
                    let enc = EventBlocks.encode(kept, dictionary: blocks.dictionary.forWriting)
                    update.reset()
                    update.bind(1, enc.tmin).bind(2, enc.tmax).bind(3, kept.count).bindBlob(4, enc.body).bind(5, g.seq)
                    try update.run()
                } else {
                    delBlock.reset()
                    try delBlock.bind(1, g.seq).run()
                }
                n += g.removed
            }
            try spanWriter.deleteBefore(cutoff)
            if let rollups { try rollups.apply(try orders.retractions(before: cutoff)) }
            try orders.deleteBefore(cutoff)
            return n
        }
        try dedup.reloadAfterRetention()
        return deleted
    }
}
