package router

// kw identifies the keywords the classifier looks at. Other words are kwNone.
type kw uint8

const (
	kwNone kw = iota
	kwSelect
	kwValues
	kwTable
	kwWith
	kwShow
	kwExplain
	kwDescribe
	kwDesc
	kwCopy
	kwTo
	kwFrom
	kwBegin
	kwStart
	kwTransaction
	kwWork
	kwCommit
	kwEnd
	kwRollback
	kwAbort
	kwPrepared
	kwPrepare
	kwDeclare
	kwHold
	kwFor
	kwSet
	kwReset
	kwDiscard
	kwAll
	kwLocal
	kwSession
	kwGlobal
	kwPersist
	kwPersistOnly
	kwTime
	kwZone
	kwSchema
	kwNames
	kwRole
	kwAuthorization
	kwCharacteristics
	kwXml
	kwOption
	kwCatalog
	kwConstraints
	kwRead
	kwOnly
	kwWrite
	kwSerializable
	kwListen
	kwCreate
	kwOr
	kwReplace
	kwTemp
	kwTemporary
	kwInto
	kwInsert
	kwUpdate
	kwDelete
	kwMerge
	kwShare
	kwKey
	kwNext
	kwPrevious
	kwValue
	kwAtomic
	kwLock
	kwUse
	kwFlush
	kwExport
	kwXa
	kwAnalyze
	kwAnalyse
	kwExtended
	kwPartitions
	kwFormat
	kwCharacter
	kwCharset
	kwPassword
	kwDefault
	kwStatement
	kwResource
	kwNot
	kwIf
	kwWhile
	kwLoop
	kwRepeat
	kwCase
	kwProcedure
	kwFunction
	kwTrigger
	kwEvent
	kwWarnings
	kwErrors
	kwCount
	kwProfile
	kwProfiles
	kwMaster
	kwBinary
	kwBinlog
	kwReplica
	kwReplicas
	kwSlave
	kwConnection
	kwPgTemp
	kwAlter
	kwDrop
	kwComment
	kwGrant
	kwRevoke
	kwSecurity
	kwRename
	kwTables
	kwVerbose
	kwSqlCalcFoundRows
	numKW // number of keyword ids
)

// kwSpelling spells every keyword in lower case.
var kwSpelling = [numKW]string{
	kwSelect:           "select",
	kwValues:           "values",
	kwTable:            "table",
	kwWith:             "with",
	kwShow:             "show",
	kwExplain:          "explain",
	kwDescribe:         "describe",
	kwDesc:             "desc",
	kwCopy:             "copy",
	kwTo:               "to",
	kwFrom:             "from",
	kwBegin:            "begin",
	kwStart:            "start",
	kwTransaction:      "transaction",
	kwWork:             "work",
	kwCommit:           "commit",
	kwEnd:              "end",
	kwRollback:         "rollback",
	kwAbort:            "abort",
	kwPrepared:         "prepared",
	kwPrepare:          "prepare",
	kwDeclare:          "declare",
	kwHold:             "hold",
	kwFor:              "for",
	kwSet:              "set",
	kwReset:            "reset",
	kwDiscard:          "discard",
	kwAll:              "all",
	kwLocal:            "local",
	kwSession:          "session",
	kwGlobal:           "global",
	kwPersist:          "persist",
	kwPersistOnly:      "persist_only",
	kwTime:             "time",
	kwZone:             "zone",
	kwSchema:           "schema",
	kwNames:            "names",
	kwRole:             "role",
	kwAuthorization:    "authorization",
	kwCharacteristics:  "characteristics",
	kwXml:              "xml",
	kwOption:           "option",
	kwCatalog:          "catalog",
	kwConstraints:      "constraints",
	kwRead:             "read",
	kwOnly:             "only",
	kwWrite:            "write",
	kwSerializable:     "serializable",
	kwListen:           "listen",
	kwCreate:           "create",
	kwOr:               "or",
	kwReplace:          "replace",
	kwTemp:             "temp",
	kwTemporary:        "temporary",
	kwInto:             "into",
	kwInsert:           "insert",
	kwUpdate:           "update",
	kwDelete:           "delete",
	kwMerge:            "merge",
	kwShare:            "share",
	kwKey:              "key",
	kwNext:             "next",
	kwPrevious:         "previous",
	kwValue:            "value",
	kwAtomic:           "atomic",
	kwLock:             "lock",
	kwUse:              "use",
	kwFlush:            "flush",
	kwExport:           "export",
	kwXa:               "xa",
	kwAnalyze:          "analyze",
	kwAnalyse:          "analyse",
	kwExtended:         "extended",
	kwPartitions:       "partitions",
	kwFormat:           "format",
	kwCharacter:        "character",
	kwCharset:          "charset",
	kwPassword:         "password",
	kwDefault:          "default",
	kwStatement:        "statement",
	kwResource:         "resource",
	kwNot:              "not",
	kwIf:               "if",
	kwWhile:            "while",
	kwLoop:             "loop",
	kwRepeat:           "repeat",
	kwCase:             "case",
	kwProcedure:        "procedure",
	kwFunction:         "function",
	kwTrigger:          "trigger",
	kwEvent:            "event",
	kwWarnings:         "warnings",
	kwErrors:           "errors",
	kwCount:            "count",
	kwProfile:          "profile",
	kwProfiles:         "profiles",
	kwMaster:           "master",
	kwBinary:           "binary",
	kwBinlog:           "binlog",
	kwReplica:          "replica",
	kwReplicas:         "replicas",
	kwSlave:            "slave",
	kwConnection:       "connection",
	kwPgTemp:           "pg_temp",
	kwAlter:            "alter",
	kwDrop:             "drop",
	kwComment:          "comment",
	kwGrant:            "grant",
	kwRevoke:           "revoke",
	kwSecurity:         "security",
	kwRename:           "rename",
	kwTables:           "tables",
	kwVerbose:          "verbose",
	kwSqlCalcFoundRows: "sql_calc_found_rows",
}

// maxKW is the length of the longest keyword.
const maxKW = 19

// Keywords are found with a perfect hash of (first two bytes, last two
// bytes, length): one multiplication, one table load and one comparison.
// kwMul is a multiplier known to be collision-free for the keyword list;
// init searches for another one if the list changes and it no longer is.
const kwMul uint64 = 0xf1d2d71ba6883e9

var (
	kwHashMul        = kwMul
	kwHashShift uint = 64 - 9
	kwHashTable []kw
)

// kwHash hashes a word of at least two bytes, ASCII case-insensitively
// (c|0x20 lower-cases letters; other bytes only need to hash consistently).
func kwHash(w string, mul uint64, shift uint) uint64 {
	n := len(w)
	mix := uint64(w[0]|0x20) | uint64(w[1]|0x20)<<8 | uint64(w[n-2]|0x20)<<16 |
		uint64(w[n-1]|0x20)<<24 | uint64(n)<<32
	return (mix * mul) >> shift
}

func init() {
	kwHashMul, kwHashShift, kwHashTable = kwSearch(kwMul)
}

// kwSearch finds a collision-free multiplier, starting with mul.
func kwSearch(mul uint64) (uint64, uint, []kw) {
	for bits := uint(9); ; bits++ {
		for try := 0; try < 100000; try++ {
			if t := kwBuild(mul, 64-bits); t != nil {
				return mul, 64 - bits, t
			}
			// splitmix64 step: the next candidate multiplier
			mul += 0x9e3779b97f4a7c15
			z := mul
			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
			z = (z ^ (z >> 27)) * 0x94d049bb133111eb
			mul = (z ^ (z >> 31)) | 1
		}
	}
}

// kwBuild returns the hash table for a multiplier, or nil on a collision.
func kwBuild(mul uint64, shift uint) []kw {
	t := make([]kw, 1<<(64-shift))
	for k := kwNone + 1; k < numKW; k++ {
		h := kwHash(kwSpelling[k], mul, shift)
		if t[h] != kwNone {
			return nil
		}
		t[h] = k
	}
	return t
}

// lookupKW returns the keyword that w spells (ASCII case-insensitively).
// It is on the hot path: the hash is kwHash, written out.
func lookupKW(w string) kw {
	n := len(w)
	if n < 2 || n > maxKW {
		return kwNone
	}
	mix := uint64(w[0]|0x20) | uint64(w[1]|0x20)<<8 | uint64(w[n-2]|0x20)<<16 |
		uint64(w[n-1]|0x20)<<24 | uint64(n)<<32
	k := kwHashTable[(mix*kwHashMul)>>kwHashShift]
	if k != kwNone && eqFold(w, kwSpelling[k]) {
		return k
	}
	return kwNone
}
