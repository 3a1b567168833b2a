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
)

// maxKW is the length of the longest keyword.
const maxKW = 15

// lookupKW returns the keyword that w spells (ASCII case-insensitively).
func lookupKW(w string) kw {
	if len(w) < 2 || len(w) > maxKW {
		return kwNone
	}
	var buf [maxKW]byte
	for i := 0; i < len(w); i++ {
		buf[i] = lower(w[i])
	}
	switch string(buf[:len(w)]) {
	case "select":
		return kwSelect
	case "values":
		return kwValues
	case "table":
		return kwTable
	case "with":
		return kwWith
	case "show":
		return kwShow
	case "explain":
		return kwExplain
	case "describe":
		return kwDescribe
	case "desc":
		return kwDesc
	case "copy":
		return kwCopy
	case "to":
		return kwTo
	case "from":
		return kwFrom
	case "begin":
		return kwBegin
	case "start":
		return kwStart
	case "transaction":
		return kwTransaction
	case "work":
		return kwWork
	case "commit":
		return kwCommit
	case "end":
		return kwEnd
	case "rollback":
		return kwRollback
	case "abort":
		return kwAbort
	case "prepared":
		return kwPrepared
	case "prepare":
		return kwPrepare
	case "declare":
		return kwDeclare
	case "hold":
		return kwHold
	case "for":
		return kwFor
	case "set":
		return kwSet
	case "reset":
		return kwReset
	case "discard":
		return kwDiscard
	case "all":
		return kwAll
	case "local":
		return kwLocal
	case "session":
		return kwSession
	case "global":
		return kwGlobal
	case "persist":
		return kwPersist
	case "persist_only":
		return kwPersistOnly
	case "time":
		return kwTime
	case "zone":
		return kwZone
	case "schema":
		return kwSchema
	case "names":
		return kwNames
	case "role":
		return kwRole
	case "authorization":
		return kwAuthorization
	case "characteristics":
		return kwCharacteristics
	case "xml":
		return kwXml
	case "option":
		return kwOption
	case "catalog":
		return kwCatalog
	case "constraints":
		return kwConstraints
	case "read":
		return kwRead
	case "only":
		return kwOnly
	case "write":
		return kwWrite
	case "serializable":
		return kwSerializable
	case "listen":
		return kwListen
	case "create":
		return kwCreate
	case "or":
		return kwOr
	case "replace":
		return kwReplace
	case "temp":
		return kwTemp
	case "temporary":
		return kwTemporary
	case "into":
		return kwInto
	case "insert":
		return kwInsert
	case "update":
		return kwUpdate
	case "delete":
		return kwDelete
	case "merge":
		return kwMerge
	case "share":
		return kwShare
	case "key":
		return kwKey
	case "next":
		return kwNext
	case "previous":
		return kwPrevious
	case "value":
		return kwValue
	case "atomic":
		return kwAtomic
	case "lock":
		return kwLock
	case "use":
		return kwUse
	case "flush":
		return kwFlush
	case "export":
		return kwExport
	case "xa":
		return kwXa
	case "analyze":
		return kwAnalyze
	case "analyse":
		return kwAnalyse
	case "extended":
		return kwExtended
	case "partitions":
		return kwPartitions
	case "format":
		return kwFormat
	case "character":
		return kwCharacter
	case "charset":
		return kwCharset
	case "password":
		return kwPassword
	case "default":
		return kwDefault
	case "statement":
		return kwStatement
	case "resource":
		return kwResource
	case "not":
		return kwNot
	case "if":
		return kwIf
	case "while":
		return kwWhile
	case "loop":
		return kwLoop
	case "repeat":
		return kwRepeat
	case "case":
		return kwCase
	case "procedure":
		return kwProcedure
	case "function":
		return kwFunction
	case "trigger":
		return kwTrigger
	case "event":
		return kwEvent
	case "warnings":
		return kwWarnings
	case "errors":
		return kwErrors
	case "count":
		return kwCount
	case "profile":
		return kwProfile
	case "profiles":
		return kwProfiles
	case "master":
		return kwMaster
	case "binary":
		return kwBinary
	case "binlog":
		return kwBinlog
	case "replica":
		return kwReplica
	case "replicas":
		return kwReplicas
	case "slave":
		return kwSlave
	case "connection":
		return kwConnection
	case "pg_temp":
		return kwPgTemp
	case "alter":
		return kwAlter
	case "drop":
		return kwDrop
	case "comment":
		return kwComment
	case "grant":
		return kwGrant
	case "revoke":
		return kwRevoke
	case "security":
		return kwSecurity
	case "rename":
		return kwRename
	case "tables":
		return kwTables
	case "verbose":
		return kwVerbose
	}
	return kwNone
}
